import json

import pytest

from benchkit.analysis import (
    category_table,
    compare,
    difficulty_table,
    markdown_table,
    pairwise,
    problem_matrix,
    runs_table,
    samples_table,
    score_interval,
)
from benchkit.config import RunConfig
from benchkit.errors import BenchkitError, StoreError
from benchkit.runner import run
from benchkit.store import ResultsStore
from tests.conftest import benchkit_cli

SEED_RUN = {
    "timestamp": "2025-03-01T10:00:00",
    "benchmark": "human_eval",
    "model": "seed-model",
    "config": {"path": "/m.gguf", "gpu_layers": 99},
    "results": {
        "score": 10.0,
        "time_taken": 5.0,
        "total_passed": 4,
        "total_problems": 40,
        "difficulty_scores": {},
        "failed_tasks": [],
    },
}


def make_run(store, run_id, passed, benchmark="human_eval", problems=40, quant="Q4_K_M", **results):
    store.save(
        {
            "run_id": run_id,
            "benchmark": benchmark,
            "model": run_id,
            "status": "complete",
            "config": {"model_quant": quant, "temperature": 0.0, "gpu_layers": -1},
            "results": {
                "score": 100 * len(passed) / problems,
                "time_taken": 1.0,
                "total_problems": problems,
                **results,
            },
        }
    )
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
    assert result.p_value == pytest.approx(2 * 0.5**10)
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
    assert table.ci_low[0] < 10.0 < table.ci_high[0]  # an interval from the seed's own totals
    assert samples_table("#0", store.dir).empty
    assert "| seed-model | human_eval |" in markdown_table(store.dir)
    with pytest.raises(BenchkitError, match="no per-sample records"):
        compare("#0", "a", store.dir)
    (pair,) = pairwise(runs_table(store.dir), store.dir).itertuples()
    assert pair.run_a == "#0" and pair.verdict.startswith("not paired: run #0 has no per-sample records")


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


def test_runs_are_selected_by_benchmark_model_or_id_in_the_order_given(store):
    make_run(store, "a", {0})
    make_run(store, "b", {0, 1})
    make_run(store, "l", {0}, benchmark="lcb")
    assert list(runs_table(store.dir, run_ids=["b", "a"]).run_id) == ["b", "a"]
    assert list(runs_table(store.dir, benchmark="human_eval").run_id) == ["#0", "a", "b"]
    assert list(runs_table(store.dir, models=["b", "l"]).run_id) == ["b", "l"]
    with pytest.raises(StoreError, match=r"no run with run_id 'zz'; stored runs: #0, a, b, l"):
        runs_table(store.dir, run_ids=["a", "zz"])


def test_score_interval_is_wilsons():
    low, high = score_interval(0.0, 30)  # a bootstrap would say [0, 0]
    assert low == 0 and high == pytest.approx(100 * 1.959964**2 / (30 + 1.959964**2), rel=1e-6)
    low, high = score_interval(50.0, 100)
    assert (low, high) == (pytest.approx(40.383, abs=1e-3), pytest.approx(59.617, abs=1e-3))


def test_tables_per_difficulty_category_and_problem(store):
    make_run(
        store,
        "a",
        {0, 1},
        problems=4,
        difficulty_scores={"hard": 0.0, "easy": 50.0},
        categories={"passed": 2, "wrong_answer": 1, "truncated": 1},
    )
    make_run(
        store,
        "b",
        {1},
        problems=4,
        difficulty_scores={"easy": 25.0, "medium": 0.0},
        categories={"passed": 1, "wrong_answer": 3},
    )
    runs = runs_table(store.dir, run_ids=["a", "b"])
    difficulty = difficulty_table(runs, store.dir)
    assert list(difficulty.columns) == ["easy", "medium", "hard"]
    assert difficulty.loc[runs.label[0]].tolist()[::2] == [50.0, 0.0]
    categories = category_table(runs, store.dir)
    assert list(categories.columns) == ["wrong_answer", "passed", "truncated"]
    assert categories.loc[runs.label[1]].tolist() == [3, 1, 0]
    matrix = problem_matrix(runs, store.dir)
    assert matrix.shape == (4, 2) and matrix.sum().tolist() == [2.0, 1.0]
    (pair,) = pairwise(runs, store.dir).itertuples()
    assert (pair.only_a, pair.only_b, pair.difference) == (1, 0, -25.0)


def test_report_of_hand_built_runs(store, tmp_path):
    from benchkit.report import write_report

    make_run(store, "a", {0, 1})
    make_run(store, "q8", {0, 1, 2}, quant="Q8_0")
    make_run(store, "l", {0}, benchmark="lcb", difficulty_scores={"easy": 2.5})
    out = write_report(store.dir, tmp_path / "r.html")
    text = out.read_text()
    assert "human_eval: 3 run(s)" in text and "lcb: 1 run(s)" in text
    assert "pass@1 by quant" in text and "pass@1 by gpu_layers" in text  # the seed's 99 vs -1
    assert "not paired: run #0 has no per-sample records" in text
    assert "pass@1 by difficulty" in text and "seed-model" in text
    with pytest.raises(BenchkitError, match="no stored runs of benchmark 'x'"):
        write_report(store.dir, tmp_path / "none.html", benchmark="x")


def test_report_on_a_broken_results_file_writes_nothing(results_dir, tmp_path):
    results_dir.mkdir()
    path = results_dir / "benchmark_results.json"
    path.write_text('{"runs": [1')
    done = benchkit_cli("report", "--results-dir", results_dir, "--out", tmp_path / "r.html")
    assert done.returncode == 1 and str(path) in done.stderr and "not valid JSON" in done.stderr
    assert path.read_text() == '{"runs": [1' and not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_runs_whose_labels_would_clash_stay_apart(store):
    make_run(store, "exp1-greedy", {0}, categories={"passed": 1, "wrong_answer": 39})
    make_run(store, "exp2-greedy", {0, 1}, categories={"passed": 2, "wrong_answer": 38})
    store.save({**store.get("exp2-greedy"), "model": "exp1-greedy"})  # same model, same id tail
    runs = runs_table(store.dir, run_ids=["exp1-greedy", "exp2-greedy"])
    assert runs.label.is_unique
    assert len(category_table(runs, store.dir)) == 2 and problem_matrix(runs, store.dir).shape == (40, 2)
    done = benchkit_cli("compare", "exp1-greedy", "exp2-greedy", "--results-dir", store.dir)
    assert done.returncode == 0, done.stderr


def test_several_samples_per_problem_use_a_signed_rank_test(store):
    for run_id, passes in (("a", 10), ("b", 11)):
        store.save(
            {
                "run_id": run_id,
                "benchmark": "human_eval",
                "model": "m",
                "status": "complete",
                "config": {"num_samples": 20},
                "results": {"score": passes * 5.0, "total_problems": 40},
            }
        )
        with store.sample_log(run_id) as log:
            for i in range(40):
                for j in range(20):
                    log.write({"task_id": f"T/{i}", "sample": j, "passed": j < passes})
    result = compare("a", "b", store.dir)
    assert result.test == "Wilcoxon signed-rank" and result.difference == pytest.approx(5.0)
    assert (result.only_a, result.only_b) == (0, 40) and result.significant  # better on every problem


def test_odd_stored_runs_are_named_not_crashed_on(store):
    data = json.loads(store.file.read_text())
    data["runs"].append({**SEED_RUN, "run_id": None, "model": "null-id"})
    store.file.write_text(json.dumps(data))
    make_run(store, "a", {0})
    store.save({**store.get("a"), "run_id": "cut", "status": "interrupted"})
    table = runs_table(store.dir)
    assert list(table.run_id) == ["#0", "#1", "a", "cut"]
    assert table.score.isna().tolist() == [False, False, False, True]  # a partial run has no score
    with pytest.raises(BenchkitError, match="compared with itself"):
        compare("a", "a", store.dir)
    store.samples_file("b").write_text('{"task_id": "T/0"}\n')
    store.save({**store.get("a"), "run_id": "b"})
    with pytest.raises(StoreError, match='needs "task_id" and "passed"') as exc:
        compare("a", "b", store.dir)
    assert str(store.samples_file("b")) in str(exc.value)


def test_report_never_overwrites_stored_results(store):
    make_run(store, "a", {0})
    before = store.file.read_bytes()
    done = benchkit_cli("report", "--results-dir", store.dir, "--out", store.file)
    assert done.returncode == 2 and "ending in .html" in done.stderr
    assert store.file.read_bytes() == before


def test_picker_names_a_benchmark_without_finished_runs(store):
    from benchkit.notebook import comparison_picker

    make_run(store, "a", {0})
    with pytest.raises(BenchkitError, match=r"no finished runs of benchmark 'lcb' .*human_eval"):
        comparison_picker(store.dir, "lcb")
