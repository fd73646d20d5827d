"""A program's processes together are held to its memory limit (a memory cgroup per worker,
where the kernel lets benchkit make one), not only each process by its RLIMIT_AS."""

import os
import textwrap
import time

import pytest

from benchkit.grading import category
from benchkit.sandbox import ISOLATION_BWRAP, Job, MemoryCgroup, Sandbox, _own_memory_cgroups

FORKS_OVER_THE_LIMIT = """
    import posix, time
    children = []
    for _ in range({children}):
        pid = posix.fork()
        if pid == 0:
            block = b"x" * ({each_mb} * 1024 * 1024)   # under RLIMIT_AS, in every child
            time.sleep(1.5)
            posix._exit(0)
        children.append(pid)
    for pid in children:
        posix.waitpid(pid, 0)
"""


@pytest.fixture(scope="module")
def box():
    if MemoryCgroup.create() is None:
        pytest.skip("no memory cgroup may be created here")
    with Sandbox(workers=1) as sandbox:
        assert sandbox.isolation.startswith(ISOLATION_BWRAP), "this test needs bubblewrap"
        yield sandbox


def test_isolation_says_so(box):
    assert "memory cgroup" in box.isolation


@pytest.mark.slow
def test_children_each_under_the_limit_but_together_over_it_are_a_memory_failure(box):
    source = textwrap.dedent(FORKS_OVER_THE_LIMIT.format(children=4, each_mb=300))
    outcome = box.submit(Job(source, timeout=5, memory_mb=512)).result()
    assert outcome.status == "memory" and category(outcome) == "memory", outcome
    assert box.submit(Job("assert True")).result().passed  # the worker carries on
    deadline = time.monotonic() + 5
    while _programs_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _programs_processes() == 0  # nothing left behind


def test_children_together_under_the_limit_pass(box):
    source = textwrap.dedent(FORKS_OVER_THE_LIMIT.format(children=2, each_mb=100))
    assert box.submit(Job(source, timeout=5, memory_mb=512)).result().passed


def test_no_memory_cgroup_is_left_behind():
    def mine():
        return {c for _, base in _own_memory_cgroups() for c in base.glob(f"benchkit-{os.getpid()}-*")}

    before = mine()
    with Sandbox(workers=1) as sandbox:
        assert sandbox.submit(Job("assert True")).result().passed
        assert len(mine() - before) >= 1
    assert mine() == before


def _programs_processes():
    """Processes below the sandbox workers (bubblewrap, its init, the worker's Python: depth 3)."""
    parents = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{name}/stat", "rb").read()
        except OSError:
            continue
        parents[int(name)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
    me, count = os.getpid(), 0
    for pid in parents:
        depth = 0
        while pid in parents and pid > 1:
            pid, depth = parents[pid], depth + 1
            if pid == me:
                count += depth > 3
                break
    return count
