"""A sandbox worker killed from outside (the OOM killer, an admin, a stray pkill) never changes
a verdict: the program runs once more in a fresh worker. Only a program that kills its worker
again fails."""

import os
import random
import signal
import threading
import time

import pytest

from benchkit.benchmarks.human_eval import HumanEval, program
from benchkit.sandbox import ISOLATION_BWRAP, Job, Sandbox

WORKER_SCRIPT = b"/sandbox/worker.py"


def busy_workers() -> list[int]:
    """Pids of this process's sandbox workers (the Python inside bubblewrap) that are running a
    program other than their first: the first may be a killed worker's program, on its second try."""
    table = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{name}/cmdline", "rb").read()
            status = open(f"/proc/{name}/status").read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        table[int(name)] = (int(fields["PPid"]), cmdline, int(fields["NSpid"].split()[-1]))
    workers = [
        pid
        for pid, (_, cmdline, _) in table.items()
        if cmdline.startswith(b"/")
        and b"python" in cmdline.split(b"\0")[0]
        and WORKER_SCRIPT in cmdline
        and _descends(pid, table)
    ]
    return [w for w in workers if any(ppid == w and nspid > 3 for ppid, _, nspid in table.values())]


def _descends(pid: int, table: dict) -> bool:
    me = os.getpid()
    while pid in table and pid > 1:
        pid = table[pid][0]
        if pid == me:
            return True
    return False


def grade(jobs, killer=None):
    with Sandbox(workers=2) as box:
        assert box.isolation.startswith(ISOLATION_BWRAP), "this test needs bubblewrap"
        stop, kills = threading.Event(), []
        if killer:
            thread = threading.Thread(target=killer, args=(stop, kills))
            thread.start()
        try:
            outcomes = box.run(jobs)
        finally:
            stop.set()
            if killer:
                thread.join()
    return outcomes, kills


def kill_workers_at_random(stop, kills):
    rng = random.Random(1)
    while not stop.wait(rng.uniform(0.05, 0.3)):
        for pid in busy_workers()[:1]:
            try:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_workers_killed_from_outside_change_no_verdict():
    tasks = [p.data for p in HumanEval().problems()]
    jobs = [Job(program(t, c)) for t in tasks for c in (t["canonical_solution"], "    return None\n")]
    jobs += [Job(program(t, t["canonical_solution"])) for t in tasks[:100]]
    undisturbed, _ = grade(jobs)
    disturbed, kills = grade(jobs, kill_workers_at_random)
    print(f"{len(kills)} sandbox workers killed while grading {len(jobs)} programs")
    assert len(kills) >= 3, "the killer found no worker to kill"
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(disturbed, undisturbed)) if a.status != b.status]
    assert differ == [], (len(kills), differ[:3])
    assert [o.status for o in disturbed] == [o.status for o in undisturbed]
    assert sum(o.passed for o in undisturbed) == 164 + 100


def test_a_program_that_kills_each_worker_it_runs_in_fails():
    killer = "import posix, signal\nposix.kill(posix.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(2)"
    started = time.monotonic()
    (outcome,) = grade([Job(killer)])[0]
    assert (outcome.status, outcome.message) == ("crashed", "the program killed its sandbox worker")
    assert time.monotonic() - started < 20
