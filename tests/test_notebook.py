"""papermill executes the real notebook with the real model."""

import json

import nbformat
import papermill
import pytest

from benchkit.store import ResultsStore
from tests.conftest import REPO, benchkit_cli

pytestmark = pytest.mark.slow
NOTEBOOK = REPO / "notebooks" / "human_eval.ipynb"


def test_notebook_has_a_tagged_parameters_cell_and_only_calls_the_package():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    code = [c.source for c in nb.cells if c.cell_type == "code" and c not in tagged]
    assert all(len(src.splitlines()) <= 3 for src in code)


def test_papermill_runs_the_notebook_with_a_parameters_file(tmp_path):
    params = tmp_path / "params.yaml"
    results = tmp_path / "results"
    params.write_text(f"limit: 2\nmax_tokens: 24\nresults_dir: {results}\n")
    out = tmp_path / "report.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters=_yaml(params), cwd=str(REPO),
                               progress_bar=False)
    (run,) = ResultsStore(results).runs()
    assert run["status"] == "complete" and run["results"]["total_problems"] == 2
    outputs = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])]
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
    assert any(run["run_id"] in json.dumps(o.get("data", {})) for o in outputs)


def test_papermill_runs_the_lcb_notebook(tmp_path):
    results = tmp_path / "results"
    parameters = {"benchmark": "lcb", "problems_file": str(REPO.parent / "shared/data/lcb/problems.jsonl"),
                  "start_date": "2025-03-01", "limit": 2, "max_tokens": 24, "results_dir": str(results)}
    out = tmp_path / "lcb.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / "lcb.ipynb"), str(out), parameters=parameters,
                               cwd=str(REPO), progress_bar=False)
    (run,) = ResultsStore(results).runs()
    assert run["benchmark"] == "lcb" and run["results"]["total_problems"] == 2
    text = out.read_text()
    assert "Public tests only" in text and "pass@1 by difficulty" in text


def test_bad_parameter_type_fails_with_the_key(tmp_path):
    out = tmp_path / "report.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as exc:
        papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={"max_tokens": "lots"},
                                   cwd=str(REPO), progress_bar=False)
    assert exc.value.ename == "ConfigError"
    assert "'max_tokens'" in exc.value.evalue and "valid integer" in exc.value.evalue


def test_unknown_parameter_is_refused(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter"):
        papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "o.ipynb"), parameters={"temprature": 1},
                                   cwd=str(REPO), progress_bar=False)


def test_cli_run_through_the_notebook(tmp_path):
    results = tmp_path / "results"
    done = benchkit_cli("run", "--notebook", "--limit", "1", "--max-tokens", "16", "--results-dir", results)
    assert done.returncode == 0, done.stderr
    (report,) = (results / "reports").glob("human_eval-*.ipynb")
    assert f"report: {report.relative_to(REPO) if report.is_relative_to(REPO) else report}" in done.stdout
    assert ResultsStore(results).runs()[0]["status"] == "complete"


def test_cli_bad_yaml_names_file_and_key(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("benchmark: human_eval\ntemperature: [hot]\n")
    done = benchkit_cli("run", "--params", params, "--notebook")
    assert done.returncode == 2
    assert str(params) in done.stderr and "'temperature'" in done.stderr and "valid number" in done.stderr


def _yaml(path):
    import yaml

    return yaml.safe_load(path.read_text())


def test_runs_lists_the_stored_runs(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "benchmark_results.json").write_text(json.dumps({"runs": [{
        "timestamp": "2025-01-01T00:00:00", "benchmark": "lcb", "model": "seed-model",
        "config": {"path": "/m.gguf", "gpu_layers": 10},
        "results": {"score": 6.6, "time_taken": 50.0, "total_passed": 11, "total_problems": 167,
                    "difficulty_scores": {}, "failed_tasks": []}}]}))
    done = benchkit_cli("runs", "--results-dir", results)
    assert done.returncode == 0, done.stderr
    assert "seed-model" in done.stdout and "6.6" in done.stdout and "complete" in done.stdout
    assert benchkit_cli("runs", "--results-dir", tmp_path / "none").stdout.strip() == "no runs stored yet"
