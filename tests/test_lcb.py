"""LiveCodeBench with the real records in ../shared/data/lcb (official verdicts)."""

import base64
import json
import os
import pickle
import random
import subprocess
import sys
import zlib
from pathlib import Path
from textwrap import indent

import pytest

from benchkit.benchmarks import get_benchmark
from benchkit.benchmarks.lcb import WHERE_TO_GET, lcb_job
from benchkit.config import RunConfig
from benchkit.errors import ConfigError, DataError
from benchkit.grading import grade_file
from benchkit.sandbox import Sandbox
from tests.conftest import SHARED

DATA = SHARED / "data" / "lcb"
PROBLEMS = DATA / "problems.jsonl"


def lcb(**filters):
    return get_benchmark("lcb", RunConfig(benchmark="lcb", problems_file=PROBLEMS, **filters))


@pytest.fixture(scope="module")
def problems():
    return {p.task_id: p for p in lcb().problems()}


@pytest.mark.needs_shared
def test_loads_every_problem(problems):
    assert len(problems) == 380
    assert problems["1873_A"].data["has_private"] and len(problems["1873_A"].data["tests"]) > 1
    functional = [p for p in problems.values() if p.data["testtype"] == "functional"]
    assert len(functional) == 171 and all(p.data["fn_name"] for p in functional)
    assert {p.difficulty for p in problems.values()} == {"easy", "medium", "hard"}


def test_no_problems_file_says_where_to_get_them():
    with pytest.raises(ConfigError, match="code_generation_lite"):
        get_benchmark("lcb", RunConfig(benchmark="lcb"))
    assert "never downloads" in WHERE_TO_GET


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/benchkit-pwned",))


def _record_with_private(tmp_path, payload_object):
    record = json.loads(PROBLEMS.read_text().splitlines()[0])
    record["private_test_cases"] = base64.b64encode(zlib.compress(pickle.dumps(payload_object))).decode()
    path = tmp_path / "test.jsonl"
    path.write_text("\n" + json.dumps(record) + "\n")
    return path, record["question_id"]


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = Path("/tmp/benchkit-pwned")
    marker.unlink(missing_ok=True)
    path, qid = _record_with_private(tmp_path, _Evil())
    with pytest.raises(DataError, match="cannot be decoded safely") as exc:
        get_benchmark("lcb", RunConfig(benchmark="lcb", problems_file=path)).problems()
    assert f"{path}:2" in str(exc.value) and qid in str(exc.value)
    assert not marker.exists()


def test_pickle_of_anything_but_a_string_is_refused(tmp_path):
    path, _ = _record_with_private(tmp_path, [{"input": "1", "output": "1"}])
    with pytest.raises(DataError, match="decoded to list, expected a JSON string"):
        get_benchmark("lcb", RunConfig(benchmark="lcb", problems_file=path)).problems()


def test_the_official_compressed_format_decodes(tmp_path):
    tests = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    path, qid = _record_with_private(tmp_path, json.dumps(tests))
    (problem,) = get_benchmark("lcb", RunConfig(benchmark="lcb", problems_file=path)).problems()
    assert problem.data["tests"][-1] == {"input": "1\n", "output": "2\n"} and problem.data["has_private"]


def test_a_problem_without_tests_still_needs_a_program_that_loads(tmp_path):
    """As abc350_c in the official data: no test, any valid program is accepted."""
    stdin = next(line for line in PROBLEMS.read_text().splitlines() if '"starter_code": ""' in line)
    record = json.loads(stdin)
    record.update(public_test_cases="[]", private_test_cases="None", question_id="no_tests")
    (tmp_path / "test.jsonl").write_text(json.dumps(record) + "\n")
    benchmark = get_benchmark("lcb", RunConfig(benchmark="lcb", problems_file=tmp_path))
    samples = tmp_path / "s.jsonl"
    samples.write_text(
        json.dumps({"task_id": "no_tests", "completion": "print(1)"})
        + "\n"
        + json.dumps({"task_id": "no_tests", "completion": "print(:"})
        + "\n"
    )
    out, _ = grade_file(samples, benchmark, 6.0, 2048, progress=False)
    assert [json.loads(line)["passed"] for line in out.read_text().splitlines()] == [True, False]


@pytest.mark.needs_shared
def test_date_platform_and_difficulty_filters(problems):
    window = lcb(start_date="2025-02-01", end_date="2025-03-31").problems()
    assert window and all("2025-02-01" <= p.data["contest_date"] <= "2025-03-31" for p in window)
    assert len(window) == sum(
        "2025-02-01" <= p.data["contest_date"] <= "2025-03-31" for p in problems.values()
    )
    assert all(p.difficulty == "hard" for p in lcb(difficulty="hard").problems())
    assert all(p.data["platform"] == "leetcode" for p in lcb(platform="leetcode").problems())
    with pytest.raises(ConfigError, match="no LiveCodeBench problem matches"):
        lcb(start_date="2030-01-01").problems()


def test_release_windows_follow_the_official_files(tmp_path):
    lines = PROBLEMS.read_text().splitlines()
    (tmp_path / "test.jsonl").write_text("\n".join(lines[:100]) + "\n")
    (tmp_path / "test2.jsonl").write_text("\n".join(lines[100:250]) + "\n")
    (tmp_path / "test3.jsonl").write_text("\n".join(lines[250:]) + "\n")

    def count(release):
        config = RunConfig(benchmark="lcb", problems_file=tmp_path, release=release)
        return len(get_benchmark("lcb", config).problems())

    assert (count("v1"), count("release_v2"), count("v3"), count(None)) == (100, 250, 380, 380)
    with pytest.raises(ConfigError, match="official file names"):
        lcb(release="v2").problems()


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text(PROBLEMS.read_text().splitlines()[0] + "\n{broken\n")
    with pytest.raises(DataError, match=f"{path}:2"):
        get_benchmark("lcb", RunConfig(benchmark="lcb", problems_file=path)).problems()


def official_sample(k=240, seed=7):
    rows = [json.loads(line) for line in (DATA / "solutions.jsonl").read_text().splitlines()]
    rows = [r for r in rows if not r.get("verdict_conflict")]
    random.Random(seed).shuffle(rows)
    passed = [r for r in rows if r["expected_verdict"]][: k // 2]
    failed = [r for r in rows if not r["expected_verdict"]][: k // 2]
    return passed + failed + [r for r in rows if r["question_id"] == "1873_A"]


@pytest.mark.needs_shared
@pytest.mark.slow
def test_verdicts_match_the_official_ones(tmp_path, problems):
    rows = official_sample()
    path = tmp_path / "samples.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {"task_id": r["question_id"], "completion": r["code"], "expected": r["expected_verdict"]}
            )
            + "\n"
            for r in rows
        )
    )
    out, _ = grade_file(path, lcb(), 6.0, 2048, progress=False)
    graded = [json.loads(line) for line in out.read_text().splitlines()]
    # public tests only (but 1873_A): we may pass programs the private tests fail, never the reverse
    false_fail = [g for g in graded if g["expected"] and not g["passed"] and g["category"] != "timeout"]
    assert false_fail == [], false_fail[:3]
    with_private = [g for g in graded if problems[g["task_id"]].data["has_private"]]
    assert with_private and all(g["passed"] == g["expected"] for g in with_private)
    assert {g["category"] for g in graded} >= {"passed", "wrong_answer", "runtime_error"}


@pytest.mark.needs_shared
@pytest.mark.slow
def test_verdicts_equal_the_official_grader_on_the_same_tests(tmp_path, problems):
    from tests.official_lcb import official_verdict

    rows = official_sample(k=200, seed=11)
    path = tmp_path / "samples.jsonl"
    path.write_text(
        "".join(json.dumps({"task_id": r["question_id"], "completion": r["code"]}) + "\n" for r in rows)
    )
    out, _ = grade_file(path, lcb(), 6.0, 2048, progress=False)
    ours = [json.loads(line) for line in out.read_text().splitlines()]
    theirs = [official_verdict(problems[r["question_id"]], r["code"]) for r in rows]
    differ = [(o["task_id"], o["result"]) for o, t in zip(ours, theirs) if o["passed"] != t]
    assert differ == []


@pytest.mark.needs_shared
@pytest.mark.slow
def test_real_run_of_the_embedded_model_on_a_date_window(tmp_path):
    from benchkit.runner import run
    from benchkit.store import ResultsStore

    config = RunConfig(
        benchmark="lcb",
        problems_file=PROBLEMS,
        start_date="2025-03-01",
        limit=3,
        max_tokens=64,
        results_dir=tmp_path,
    )
    record = run(config, progress=False)
    res, cfg = record["results"], record["config"]
    assert record["status"] == "complete" and res["total_problems"] == 3
    assert cfg["sandbox"]["time_limit_s"] == 6.0 and cfg["settings"]["start_date"] == "2025-03-01"
    assert cfg["sandbox"]["time_limit_clock"].startswith("own time")
    assert cfg["data"]["public_tests_only"] is True and str(PROBLEMS) in cfg["data"]["problems_sha256"]
    assert set(res["difficulty_scores"]) <= {"easy", "medium", "hard"}
    samples = ResultsStore(tmp_path).samples(record["run_id"])
    assert len(samples) == 3 and all(s["prompt"].startswith("### Question:") for s in samples)
    assert len(set(res["failed_tasks"])) == len(res["failed_tasks"]) <= 3


@pytest.mark.needs_shared
def test_scores_are_per_problem_not_per_test(tmp_path, problems):
    """The seed's origin counted test cases (441 for 167 problems); a problem is one unit here."""
    qid = next(q for q, p in problems.items() if len(p.data["tests"]) >= 3)
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"task_id": qid, "completion": "print(0)"}) + "\n")
    out, pass_k = grade_file(path, lcb(), 6.0, 2048, progress=False)
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["passed"] is False and pass_k == {"pass@1": 0.0}


def test_corrected_comparison_fixes_known_false_negatives_and_counts_them(tmp_path):
    stdin = next(line for line in PROBLEMS.read_text().splitlines() if '"starter_code": ""' in line)
    record = json.loads(stdin)
    tests = [{"input": "3\n", "output": "0.3333333\n", "testtype": "stdin"}]
    record.update(public_test_cases=json.dumps(tests), private_test_cases="None", question_id="third")
    (tmp_path / "test.jsonl").write_text(json.dumps(record) + "\n")
    programs = [
        "n = int(input())\nprint(1 / n)",  # float within 1e-6
        "import sys\nn = int(input())\nsys.stdout.buffer.write(b'0.3333333\\n')",  # stdout.buffer
        "n = int(input())\nprint('0.3333333')",  # right either way
        "n = int(input())\nprint(0.5)",  # wrong either way
    ]
    samples = tmp_path / "samples" / "s.jsonl"
    samples.parent.mkdir()
    samples.write_text("".join(json.dumps({"task_id": "third", "completion": p}) + "\n" for p in programs))
    verdicts = {}
    for corrected in (False, True):
        config = RunConfig(benchmark="lcb", problems_file=tmp_path, lcb_corrected=corrected)
        out, summary = grade_file(samples, get_benchmark("lcb", config), 6.0, 2048, progress=False)
        verdicts[corrected] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["passed"] for r in verdicts[False]] == [False, False, True, False]
    assert [r["passed"] for r in verdicts[True]] == [True, True, True, False]
    assert [r["official_passed"] for r in verdicts[True]] == [False, False, True, False]
    assert summary["corrected_verdicts_changed"] == 2
    row_keys = {"task_id", "completion", "passed", "result", "category"}  # what a sample row stores
    assert all(set(r) == row_keys for r in verdicts[False])
    assert all(set(r) == row_keys | {"official_passed"} for r in verdicts[True])


def test_the_lcb_harness_reports_which_test_failed():
    tests = [{"input": "1 2\n", "output": "3\n"}, {"input": "2 2\n", "output": "4\n"}]
    job = lcb_job("a, b = map(int, input().split())\nprint(a + b if a == 1 else 0)", tests, timeout=2)
    assert (job.harness, job.runs) == ("lcb", 2)
    with Sandbox(workers=1) as box:
        failed, passed = box.run([job, lcb_job("print(sum(map(int, input().split())))", tests, timeout=2)])
    assert (failed.status, failed.error_type) == ("failed", "WrongAnswer")
    assert failed.details == {"tests_passed": 1, "failed_test": 1}
    assert passed.passed and passed.details == {"tests_passed": 2}


def test_corrected_comparison_lifts_the_int_digit_limit(tmp_path):
    stdin = next(line for line in PROBLEMS.read_text().splitlines() if '"starter_code": ""' in line)
    record = json.loads(stdin)
    big = "7" * 60000
    tests = [{"input": "1\n", "output": big + "\n", "testtype": "stdin"}]
    record.update(public_test_cases=json.dumps(tests), private_test_cases="None", question_id="big")
    (tmp_path / "test.jsonl").write_text(json.dumps(record) + "\n")
    samples = tmp_path / "samples.txt"
    samples.write_text(
        json.dumps({"task_id": "big", "completion": "input()\nprint(int('7' * 60000))"}) + "\n"
    )
    config = RunConfig(benchmark="lcb", problems_file=tmp_path, lcb_corrected=True)
    out, summary = grade_file(samples, get_benchmark("lcb", config), 6.0, 2048, progress=False)
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["passed"] is True and row["official_passed"] is False


# How a program reads its input, ends and sees its module: each must get the official verdict
# (the harness runs the official prelude once per worker, and patches stdin without mock).
STDIN_PROGRAMS = [
    "print(sum(map(int, input().split())))",
    "import sys\nprint(sum(map(int, sys.stdin.readline().split())))",
    "print(sum(map(int, stdin.readline().split())))",  # `stdin` from the prelude's `from sys import *`
    "print(sum(map(int, stdin.read().split())))",
    "print(sum(map(int, ''.join(stdin.readlines()).split())))",
    "import sys\nprint(sum(map(int, sys.stdin.read().split())))",
    "import sys\nprint(sum(int(x) for line in sys.stdin for x in line.split()))",
    "print(sum(map(int, open(0).read().split())))",
    "import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))",  # no .buffer there: fails
    "print(sum(map(int, input().split())))\nexit()",
    "print(sum(map(int, input().split())))\nquit()",  # the guard set builtins.quit to None
    "print(sum(map(int, input().split())))\nimport sys\nsys.exit(0)",
    "input()\ninput()\nprint(3)",  # reading past the end
    "print(3 if __name__ == 'tmp_sol' else 0)",
    "print(3 if __name__ == '__main__' else 0)",
    "import sys\nprint(3 if sys.getrecursionlimit() == 50000 else 0)",
    "print(3 if help is None else 0)",
    "print(3 if isinstance(deque(), Iterable) and gcd(6, 9) == 3 else 0)",  # prelude names
    "def main():\n    print(sum(map(int, input().split())))\n\nif __name__ == '__main__':\n    main()",
    "x = (\nprint(3)",  # no AST: the official runs it as it is
    "from __future__ import annotations\nprint(sum(map(int, input().split())))",  # after the prelude
    "import sys\ninput = lambda: sys.stdin.readline().rstrip()\nprint(sum(map(int, input().split())))",
]
CALL_PROGRAMS = [
    "class Solution:\n    def add(self, a: int, b: int) -> int:\n        return a + b",
    "class Solution:\n    def add(self, a, b):\n        return gcd(a, b) * 0 + a + b",
    "class Solution:\n    def add(self, a, b):\n        quit()",
    "class Solution:\n    def add(self, a, b):\n        exit()",
    "def add(a, b):\n    return a + b",
    "from __future__ import annotations\nclass Solution:\n    def add(self, a: int, b: int) -> int:\n"
    "        return a + b",
    '"""A docstring, not the module\'s: the prelude came first."""\nclass Solution:\n'
    '    def add(self, a, b):\n        return a + b if __doc__ == "" else 0',
    "class Solution:\n    def add(self, a, b):\n        import sys\n        return a + b if sys.getrecursionlimit() == 50000 else 0",
]


@pytest.mark.slow
def test_input_exits_and_prelude_names_get_the_official_verdicts():
    from benchkit.benchmarks.base import Problem
    from tests.official_lcb import codegen_verdicts

    stdin_tests = [{"input": "1 2", "output": "3"}, {"input": "1\n2\n", "output": "3\n"}]
    call_tests = [{"input": "1\n2", "output": "3"}, {"input": "40\n2", "output": "42"}]
    stdin = Problem("stdin", "", None, {"tests": stdin_tests, "fn_name": None, "testtype": "stdin"})
    call = Problem("call", "", None, {"tests": call_tests, "fn_name": "add", "testtype": "functional"})
    cases = [(stdin, code) for code in STDIN_PROGRAMS] + [(call, code) for code in CALL_PROGRAMS]
    theirs = codegen_verdicts([p for p, _ in cases], [c for _, c in cases])
    jobs = [
        lcb_job(c, p.data["tests"], mode="stdio" if p is stdin else "call", fn_name=p.data["fn_name"])
        for p, c in cases
    ]
    with Sandbox(workers=2) as box:
        ours = [outcome.passed for outcome in box.run(jobs)]
    differ = [(c, a, b) for (_, c), a, b in zip(cases, ours, theirs) if a != b]
    assert differ == []
    assert 10 <= sum(theirs) < len(cases)


def needs_cpu(seconds, then="print(3)"):
    """A program that burns `seconds` of its own CPU time, whatever the machine's speed."""
    return (
        f"import time\nt = time.process_time()\nwhile time.process_time() - t < {seconds}:\n    pass\n{then}"
    )


@pytest.fixture
def busy_machine():
    """Two CPU-bound processes per core, each in a session of its own (so, with the kernel's
    autogroups, a scheduling group of its own, as a sandbox worker has), as a model generating
    beside the grader or another user's jobs would be."""
    hogs = [
        subprocess.Popen(
            [sys.executable, "-c", "print(flush=True)\nwhile True:\n    pass"],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        for _ in range(2 * len(os.sched_getaffinity(0)))
    ]
    try:
        for hog in hogs:
            hog.stdout.readline()  # it runs
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.mark.slow
def test_a_test_gets_its_time_limit_in_its_own_time_on_a_busy_machine(busy_machine):
    """The official grader gives each program a core for its time limit; here a program waits
    for a CPU behind the busy machine's processes, and that wait is not counted against it."""
    tests = [{"input": "", "output": "3"}]
    programs = {
        "needs 0.6 s of CPU": needs_cpu(0.6),
        "needs 1.6 s of CPU": needs_cpu(1.6),
        "needs 0.6 s on a thread": "import threading\n"
        + f"t = threading.Thread(target=exec, args=({needs_cpu(0.6, 'pass')!r},))\nt.start()\nt.join()\nprint(3)",
        "sleeps 1.5 s": "import time\ntime.sleep(1.5)\nprint(3)",  # its own time: wall-clock time
        "catches the alarm": "try:\n    while True:\n        pass\nexcept BaseException:\n    print(3)",
    }
    jobs = [lcb_job(code, tests, mode="stdio", timeout=1.0) for code in programs.values()]
    with Sandbox(workers=2) as box:
        outcomes = dict(zip(programs, box.run(jobs)))
    assert {name: o.status for name, o in outcomes.items()} == {
        "needs 0.6 s of CPU": "passed",
        "needs 1.6 s of CPU": "timeout",
        "needs 0.6 s on a thread": "passed",  # timed by its thread, not the main one in join()
        "sleeps 1.5 s": "timeout",
        "catches the alarm": "failed",  # the official handler's line is in its output
    }
    assert outcomes["needs 0.6 s of CPU"].seconds > 1.0  # past its limit in wall-clock time
    assert outcomes["needs 0.6 s on a thread"].seconds > 1.0


def _solution(body):
    return "class Solution:\n    def add(self, a, b):\n" + indent(body, " " * 8)


@pytest.mark.slow
def test_programs_that_need_most_of_their_time_limit_get_the_official_verdict():
    """The official grader runs one program per core, with an alarm for loading and one for
    each test. Here long programs and thirty quick ones share two workers' cores, and each
    gets the official verdict: those that need 70 % of the limit (to load, and again for a
    test; or on each of eight tests) pass; one that catches the alarm passes when its answer
    is a return value, and fails on stdin (the official handler prints into the output); a
    timer the program set while loading is cancelled before the tests."""
    from benchkit.benchmarks.base import Problem
    from tests.official_lcb import codegen_verdicts

    def problem(name, tests, fn_name=None):
        testtype = "functional" if fn_name else "stdin"
        return Problem(name, "", None, {"tests": tests, "fn_name": fn_name, "testtype": testtype})

    stdin = problem("stdin", [{"input": "1 2", "output": "3"}])
    call = problem("call", [{"input": "1\n2", "output": "3"}], "add")
    eight = problem("eight", [{"input": f"{i} 2", "output": str(i + 2)} for i in range(8)])
    then = "print(sum(map(int, input().split())))"
    catch = "try:\n    while True:\n        pass\nexcept BaseException:\n    pass\n"
    cases = [(stdin, needs_cpu(1.4, then))] * 3 + [(stdin, needs_cpu(3.0, then))] + [(stdin, then)] * 30
    cases += [
        (stdin, catch + then),
        (call, _solution(catch + "return a + b")),
        (call, needs_cpu(1.4, _solution(needs_cpu(1.4, "return a + b")))),
        (eight, needs_cpu(0.6, then)),
        (
            call,
            "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0.3)\n"
            + _solution("import time\ntime.sleep(0.6)\nreturn a + b"),
        ),
    ]
    theirs = codegen_verdicts([p for p, _ in cases], [c for _, c in cases], processes=2, timeout=2)
    jobs = [
        lcb_job(
            c, p.data["tests"], mode="call" if p is call else "stdio", fn_name=p.data["fn_name"], timeout=2
        )
        for p, c in cases
    ]
    with Sandbox(workers=2) as box:
        ours = [o.passed for o in box.run(jobs)]
    assert ours == theirs
    assert theirs[:4] + theirs[-5:] == [True, True, True, False, False, True, True, True, True]
