"""papermill executes the real notebook with the real model; the notebooks' parameters cells
restate no default of RunConfig."""

import ast
import itertools
import json
import os
import re
import subprocess
import sys
import time

import nbformat
import papermill
import pytest
from papermill.translators import PythonTranslator

from benchkit.benchmarks import benchmark_class
from benchkit.config import RunConfig, load_parameters
from benchkit.notebook import EXTRA_PARAMETERS
from benchkit.store import ResultsStore
from tests.conftest import REPO, benchkit_cli

NOTEBOOK = REPO / "notebooks" / "human_eval.ipynb"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
COMPARE_EXTRAS = {"run_ids", "models", "interactive", "sweep", "baseline"}  # compare.ipynb's own


def _parameters_cell(path):
    (cell,) = [
        c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])
    ]
    return cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_restates_no_default(path):
    """A copied default drifts (lcb.ipynb once halved LiveCodeBench's 6 s limit with
    `timeout = 3.0`): every RunConfig name in the cell is None, except the notebook's benchmark."""
    values = {}
    for node in ast.parse(_parameters_cell(path)).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.dump(node)
        values[node.targets[0].id] = ast.literal_eval(node.value)
    inferred = PythonTranslator.inspect(nbformat.v4.new_code_cell(_parameters_cell(path)))
    assert [p.name for p in inferred] == list(values)  # papermill parses every line (--help-notebook)
    extras = EXTRA_PARAMETERS | (COMPARE_EXTRAS if path.stem == "compare" else set())
    assert set(values) <= set(RunConfig.model_fields) | extras, set(values) - set(RunConfig.model_fields)
    restated = {
        k: v
        for k, v in values.items()
        if k in RunConfig.model_fields and v is not None and (k, v) != ("benchmark", path.stem)
    }
    assert restated == {}
    if path.stem != "compare":
        assert values["benchmark"] == path.stem and "timeout" not in values


@pytest.mark.parametrize("path", sorted((REPO / "parameters").glob("*.yaml")), ids=lambda p: p.stem)
def test_parameter_files_keep_the_benchmarks_time_limit(path):
    from benchkit.sweep import load_sweep

    if path.stem == "compare":
        return
    configs = (
        [c.config for c in load_sweep(path).cells]
        if path.stem.startswith("sweep")
        else [load_parameters(path)]
    )
    for config in configs:
        default = benchmark_class(config.benchmark).default_timeout
        assert config.timeout in (None, default), f"{path.name} sets timeout {config.timeout}, not {default}"


def test_notebook_has_a_tagged_parameters_cell_and_only_calls_the_package():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    code = [c.source for c in nb.cells if c.cell_type == "code" and c not in tagged]
    assert all(len(src.splitlines()) <= 3 for src in code)


@pytest.mark.slow
def test_papermill_runs_the_notebook_with_a_parameters_file(tmp_path):
    params = tmp_path / "params.yaml"
    results = tmp_path / "results"
    params.write_text(f"limit: 2\nmax_tokens: 24\nresults_dir: {results}\n")
    out = tmp_path / "report.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), parameters=_yaml(params), cwd=str(REPO), progress_bar=False
    )
    (run,) = ResultsStore(results).runs()
    assert run["status"] == "complete" and run["results"]["total_problems"] == 2
    outputs = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])]
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
    assert any(run["run_id"] in json.dumps(o.get("data", {})) for o in outputs)


@pytest.mark.slow
def test_papermill_runs_the_lcb_notebook(tmp_path):
    results = tmp_path / "results"
    parameters = {
        "benchmark": "lcb",
        "problems_file": str(REPO.parent / "shared/data/lcb/problems.jsonl"),
        "start_date": "2025-03-01",
        "limit": 2,
        "max_tokens": 24,
        "results_dir": str(results),
    }
    out = tmp_path / "lcb.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "lcb.ipynb"),
        str(out),
        parameters=parameters,
        cwd=str(REPO),
        progress_bar=False,
    )
    (run,) = ResultsStore(results).runs()
    assert run["benchmark"] == "lcb" and run["results"]["total_problems"] == 2
    assert run["config"]["settings"]["timeout"] is None and run["config"]["sandbox"]["time_limit_s"] == 6.0
    text = out.read_text()
    assert "Public tests only" in text and "pass@1 by difficulty" in text


@pytest.mark.slow
def test_bad_parameter_type_fails_with_the_key(tmp_path):
    out = tmp_path / "report.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as exc:
        papermill.execute_notebook(
            str(NOTEBOOK), str(out), parameters={"max_tokens": "lots"}, cwd=str(REPO), progress_bar=False
        )
    assert exc.value.ename == "ConfigError"
    assert "'max_tokens'" in exc.value.evalue and "valid integer" in exc.value.evalue


@pytest.mark.slow
def test_unknown_parameter_is_refused(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter"):
        papermill.execute_notebook(
            str(NOTEBOOK),
            str(tmp_path / "o.ipynb"),
            parameters={"temprature": 1},
            cwd=str(REPO),
            progress_bar=False,
        )


@pytest.mark.slow
def test_cli_run_through_the_notebook(tmp_path):
    results = tmp_path / "results"
    done = benchkit_cli("run", "--notebook", "--limit", "1", "--max-tokens", "16", "--results-dir", results)
    assert done.returncode == 0, done.stderr
    (report,) = (results / "reports").glob("human_eval-*.ipynb")
    assert f"report: {report.relative_to(REPO) if report.is_relative_to(REPO) else report}" in done.stdout
    assert ResultsStore(results).runs()[0]["status"] == "complete"


@pytest.mark.slow
def test_cli_bad_yaml_names_file_and_key(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("benchmark: human_eval\ntemperature: [hot]\n")
    done = benchkit_cli("run", "--params", params, "--notebook")
    assert done.returncode == 2
    assert str(params) in done.stderr and "'temperature'" in done.stderr and "valid number" in done.stderr


def _yaml(path):
    import yaml

    return yaml.safe_load(path.read_text())


@pytest.mark.slow
def test_runs_lists_the_stored_runs(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "benchmark_results.json").write_text(
        json.dumps(
            {
                "runs": [
                    {
                        "timestamp": "2025-01-01T00:00:00",
                        "benchmark": "lcb",
                        "model": "seed-model",
                        "config": {"path": "/m.gguf", "gpu_layers": 10},
                        "results": {
                            "score": 6.6,
                            "time_taken": 50.0,
                            "total_passed": 11,
                            "total_problems": 167,
                            "difficulty_scores": {},
                            "failed_tasks": [],
                        },
                    }
                ]
            }
        )
    )
    done = benchkit_cli("runs", "--results-dir", results)
    assert done.returncode == 0, done.stderr
    assert "seed-model" in done.stdout and "6.6" in done.stdout and "complete" in done.stdout
    assert benchkit_cli("runs", "--results-dir", tmp_path / "none").stdout.strip() == "no runs stored yet"


@pytest.mark.slow
def test_readme_command_shows_progress_in_the_terminal_and_keeps_the_report_clean(tmp_path):
    """The README's main command (papermill's CLI on human_eval.ipynb with a parameters file):
    the terminal gets the run id, then samples done / total, pass rate and tok/s every few
    seconds; the executed notebook gets one widget, not the lines."""
    params, out = tmp_path / "params.yaml", tmp_path / "report.ipynb"
    params.write_text(f"limit: 3\nmax_tokens: 64\nresults_dir: {tmp_path / 'results'}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCHKIT_PROGRESS_SECONDS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(NOTEBOOK), str(out), "-f", str(params)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = ResultsStore(tmp_path / "results").runs()
    print(done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("benchkit: ")]
    assert (
        lines[0].startswith(f"benchkit: run {run['run_id']} started: human_eval") and "3 samples" in lines[0]
    )
    assert re.match(
        rf"benchkit: run {run['run_id']} complete: 3/3 samples, pass [0-9.]+%, [0-9.]+ tok/s", lines[-1]
    ), lines[-1]
    status = [line for line in lines[1:-1] if re.search(r"\d/3 samples, pass .*, .* tok/s, ", line)]
    assert status, lines
    seconds = [_seconds(re.search(r"(\d+:\d\d:\d\d) elapsed", line).group(1)) for line in status + lines[-1:]]
    assert all(later - earlier <= 3 for earlier, later in itertools.pairwise(seconds)), (
        lines
    )  # every second or so
    nb = nbformat.read(out, as_version=4)
    streams = "".join(
        o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream"
    )
    assert "benchkit: " not in out.read_text() and "tok/s" not in streams and len(streams) < 2000
    views = [
        o
        for c in nb.cells
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(views) == 1  # the one progress widget
    assert "3/3</b> samples" in json.dumps(nb.metadata.get("widgets", {}))  # its last state


def _seconds(clock: str) -> int:
    hours, minutes, seconds = map(int, clock.split(":"))
    return 3600 * hours + 60 * minutes + seconds


def test_progress_lines_start_with_the_run_id_and_come_every_interval(monkeypatch):
    import io

    from benchkit import progress

    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.05)
    stream = io.StringIO()
    with progress.LineProgress(progress.Counts("RUN", "human_eval m", total=4, initial=1), stream) as bar:
        bar.update(graded=1, passed=1, tokens=100, gen_seconds=2.0)
        deadline = time.monotonic() + 10
        while stream.getvalue().count("\n") < 4 and time.monotonic() < deadline:
            time.sleep(0.01)  # the heartbeat writes with no sample finishing
    lines = stream.getvalue().strip("\n").splitlines()
    assert lines[0] == "benchkit: run RUN started: human_eval m, 4 samples (1 already done)"
    assert len(lines) >= 4 and lines[1].startswith(
        "benchkit: 2/4 samples, pass 100.0%, 50.0 tok/s, 0:00:00 elapsed"
    )
    assert lines[-1].startswith("benchkit: run RUN complete: 2/4 samples") and "resume" not in lines[-1]
    stream = io.StringIO()
    with (
        pytest.raises(KeyboardInterrupt),
        progress.LineProgress(progress.Counts("RUN", "t", total=4), stream),
    ):
        raise KeyboardInterrupt
    assert stream.getvalue().splitlines()[-1].startswith("benchkit: run RUN interrupted: 0/4 samples, pass –")
    assert stream.getvalue().splitlines()[-1].endswith("resume with: benchkit run --resume RUN")
