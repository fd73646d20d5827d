import json

import pytest

from benchkit.analysis import compare, markdown_table, runs_table, samples_table
from benchkit.config import RunConfig
from benchkit.errors import BenchkitError, StoreError
from benchkit.runner import run
from benchkit.store import ResultsStore
from tests.conftest import benchkit_cli

SEED_RUN = {"timestamp": "2025-03-01T10:00:00", "benchmark": "human_eval", "model": "seed-model",
            "config": {"path": "/m.gguf", "gpu_layers": 99},
            "results": {"score": 10.0, "time_taken": 5.0, "total_passed": 4, "total_problems": 40,
                        "difficulty_scores": {}, "failed_tasks": []}}


def make_run(store, run_id, passed, benchmark="human_eval", problems=40):
    store.save({"run_id": run_id, "benchmark": benchmark, "model": run_id, "status": "complete",
                "config": {"model_quant": "Q4_K_M", "temperature": 0.0},
                "results": {"score": 100 * len(passed) / problems, "time_taken": 1.0,
                            "total_problems": problems}})
    with store.sample_log(run_id) as log:
        for i in range(problems):
            log.write({"task_id": f"T/{i}", "sample": 0, "passed": i in passed})


@pytest.fixture
def store(results_dir):
    store = ResultsStore(results_dir)
    results_dir.mkdir(parents=True)
    store.file.write_text(json.dumps({"runs": [SEED_RUN]}))
    return store


def test_a_real_difference_is_significant(store):
    make_run(store, "a", set(range(20)))
    make_run(store, "b", set(range(30)))
    result = compare("a", "b", store.dir)
    assert (result.problems, result.only_a, result.only_b) == (40, 0, 10)
    assert result.p_value == pytest.approx(2 * 0.5 ** 10)
    assert result.difference == pytest.approx(25.0) and 0 < result.ci_low < 25 < result.ci_high
    assert result.significant and "significant" in result.summary()


def test_noise_is_called_noise(store):
    make_run(store, "a", {0, 1, 2, 3, 4})
    make_run(store, "b", {0, 1, 2, 3, 5})
    result = compare("a", "b", store.dir)
    assert result.p_value == 1.0 and not result.significant
    assert "not significant" in result.summary()


def test_different_benchmarks_or_problem_sets_are_refused(store):
    make_run(store, "a", {0})
    make_run(store, "l", {0}, benchmark="lcb")
    make_run(store, "short", {0}, problems=30)
    with pytest.raises(BenchkitError, match="different benchmarks"):
        compare("a", "l", store.dir)
    with pytest.raises(BenchkitError, match="different problems"):
        compare("a", "short", store.dir)


def test_seed_format_runs_load_but_cannot_be_paired(store):
    make_run(store, "a", {0})
    table = runs_table(store.dir)
    assert list(table.model) == ["seed-model", "a"] and table.status.iloc[0] == "complete"
    assert samples_table("#0", store.dir).empty
    assert "| seed-model | human_eval |" in markdown_table(store.dir)
    with pytest.raises(StoreError, match="no run with run_id"):
        compare("#0", "a", store.dir)


def test_broken_results_file_is_named_and_kept(results_dir):
    results_dir.mkdir()
    path = results_dir / "benchmark_results.json"
    path.write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        runs_table(results_dir)
    assert path.read_text() == "{not json"
    done = benchkit_cli("compare", "a", "b", "--results-dir", results_dir)
    assert done.returncode == 1 and str(path) in done.stderr


@pytest.mark.slow
def test_two_real_runs_compared_from_the_cli(results_dir):
    first = run(RunConfig(limit=4, max_tokens=24, results_dir=results_dir), progress=False)
    second = run(RunConfig(limit=4, max_tokens=48, results_dir=results_dir), progress=False)
    done = benchkit_cli("compare", first["run_id"], second["run_id"], "--results-dir", results_dir)
    assert done.returncode == 0, done.stderr
    assert "on 4 problems" in done.stdout and "McNemar exact p" in done.stdout
