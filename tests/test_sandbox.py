"""The sandbox runs real programs in real (bubblewrap) workers; no mocks."""

import textwrap
import time
from pathlib import Path

import pytest

from benchkit.sandbox import ISOLATION_PROCESS, Job, Sandbox, pids_cgroup


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2) as box:
        yield box


def run(sandbox, source, **limits):
    return sandbox.submit(Job(textwrap.dedent(source), **limits)).result()


def test_pass_and_fail(sandbox):
    assert run(sandbox, "def f(): return 1\nassert f() == 1").status == "passed"
    failed = run(sandbox, "assert 1 == 2, 'nope'")
    assert (failed.status, failed.error_type, failed.message) == ("failed", "AssertionError", "failed: nope")


@pytest.mark.parametrize(
    "trick",
    [
        "import sys\nsys.exit(0)",
        "raise SystemExit(0)",
        "import os\nos._exit(0)",
        "import atexit, os\natexit.register(lambda: os._exit(0))\nassert False",
        "import sys\nsys.excepthook = lambda *a: None\nassert False",
        "import threading, os\nthreading.Thread(target=lambda: os._exit(0)).start()\nimport time\ntime.sleep(1)\nassert False",
        "print('passed')\nassert False",
        "import sys\nsys.stdout = None\nsys.stderr = None\nassert False",
        'import os\nfor fd in range(3, 1400):\n    try:\n        os.write(fd, b\'{"status": "passed"}\\n\')\n    except OSError:\n        pass\nassert False',
    ],
)
def test_no_false_pass(sandbox, trick):
    assert run(sandbox, trick, timeout=3).status != "passed"


def test_system_exit_inside_function_under_test(sandbox):
    source = """
    def candidate(x):
        raise SystemExit(0)
    def check(f):
        assert f(1) == 2
    check(candidate)
    """
    outcome = run(sandbox, source)
    assert outcome.status == "failed" and outcome.error_type == "SystemExit"


def test_time_limit(sandbox):
    started = time.monotonic()
    outcome = run(sandbox, "while True:\n    pass", timeout=1)
    assert outcome.status == "timeout"
    assert time.monotonic() - started < 5


def test_memory_limit(sandbox):
    outcome = run(sandbox, "x = bytearray(3 * 1024**3)", memory_mb=512)
    assert outcome.status == "memory"


def test_memory_below_the_limit_is_fine(sandbox):
    assert run(sandbox, "x = bytearray(100 * 1024**2)\nassert len(x) > 0", memory_mb=512).passed


def test_program_killing_its_worker_does_not_stop_the_grader(sandbox):
    killer = "import posix, signal\nposix.kill(posix.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(2)"
    assert run(sandbox, killer).status == "crashed"
    outcomes = sandbox.run([Job("assert True")] * 20)
    assert all(o.passed for o in outcomes)


@pytest.mark.slow
def test_detached_children_are_killed():
    marker = "/tmp/left-behind"
    source = f"""
    import posix, time
    if posix.fork() == 0:
        posix.setsid()
        time.sleep(1.5)
        open({marker!r}, "w").write("alive")
        posix._exit(0)
    """
    with Sandbox(workers=1) as single:  # one worker: both jobs see the same sandbox /tmp
        assert run(single, source).passed
        time.sleep(2)
        assert run(single, f"import os\nassert not os.path.exists({marker!r})").passed


def test_outcomes_keep_job_order(sandbox):
    jobs = [Job(f"assert {i} % 3 != 0") for i in range(60)]
    assert [o.passed for o in sandbox.run(jobs)] == [i % 3 != 0 for i in range(60)]


def test_process_fallback_still_grades():
    with Sandbox(workers=1, isolation="process") as box:
        assert box.isolation.startswith(ISOLATION_PROCESS)
        assert box.submit(Job("assert True")).result().passed
        assert box.submit(Job("assert False")).result().status == "failed"
        assert box.submit(Job("while True: pass", timeout=0.5)).result().status == "timeout"


def test_cgroups_left_by_dead_processes_are_removed():
    base = Path("/sys/fs/cgroup/pids")
    if pids_cgroup() is None or not base.is_dir():
        pytest.skip("no pids cgroup may be created here")
    stale = base / "benchkit-999999999-1-1"  # above pid_max: its owner is surely dead
    stale.mkdir()
    cgroup = pids_cgroup()
    try:
        assert not stale.exists() and cgroup.exists()
    finally:
        cgroup.rmdir()


def test_an_unknown_harness_is_a_crashed_program_that_names_it(sandbox):
    outcome = sandbox.submit(Job("assert True", harness="mbpp")).result()
    assert outcome.status == "crashed" and "'mbpp'" in outcome.message and "exec, lcb" in outcome.message
    assert sandbox.submit(Job("assert True")).result().passed  # the worker carries on


def test_each_program_is_a_fresh_process_with_its_own_random_numbers_and_threads(sandbox):
    """The worker forks without Python's at-fork hooks; the child still draws its own seed, as
    after os.fork(), and threads, locks and the threading module work as in any process."""
    draws = {run(sandbox, "import random\nraise ValueError(random.random())").message for _ in range(6)}
    assert len(draws) == 6
    threaded = """
        import threading, queue, concurrent.futures
        results = queue.Queue()
        workers = [threading.Thread(target=lambda i=i: results.put(i * i)) for i in range(8)]
        for w in workers: w.start()
        for w in workers: w.join()
        assert sorted(results.get() for _ in range(8)) == [i * i for i in range(8)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            assert list(pool.map(abs, [-1, -2])) == [1, 2]
    """
    assert run(sandbox, threaded).status == "passed"
