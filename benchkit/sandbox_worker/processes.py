"""A program's processes, inside the sandbox (stdlib only): forking it, timing it by its own
time, and killing and reaping every process it started."""

import _thread
import contextlib
import ctypes
import os
import random
import select
import signal
import sys
import time

KILL_SECONDS = 5.0
_LIBC = ctypes.PyDLL(None, use_errno=True)  # PyDLL: a call holds the GIL throughout
# Inside bubblewrap the worker has its own /tmp, /dev/shm and PID namespace.
INSIDE_BWRAP = "--inside-bwrap" in sys.argv


def kill_descendants(child=None):
    """SIGKILL every process below this worker and reap them, for up to KILL_SECONDS.

    Inside bubblewrap the worker is alone in its PID namespace with the programs, and one
    kill(-1) reaches them all: the kernel lets no fork finish past it. Elsewhere walk /proc
    and kill every descendant until none is left (forks race the kill). Blocking on one
    child first is what not to do: a fork bomb's live processes can stall its exit for
    many seconds (they contend for the memory maps it must tear down). Waiting on the
    program's own process (`child`) a few milliseconds at a time is fine: it wakes the loop
    the moment that one is gone, instead of a fixed sleep per round."""
    me = os.getpid()
    deadline = time.monotonic() + KILL_SECONDS
    exited = _exit_notice(child)
    try:
        while time.monotonic() < deadline:
            _reap()
            if not _has_children():
                return  # as a subreaper, any live descendant would be (or descend from) a child
            if INSIDE_BWRAP:
                with contextlib.suppress(OSError):
                    os.kill(-1, signal.SIGKILL)  # all but this worker and the namespace's init
            else:
                parents = dict(_process_table())
                for pid in [pid for pid in parents if pid != me and _descends(pid, me, parents)]:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            if exited is not None and select.select([exited], [], [], 0.05)[0]:
                os.close(exited)
                exited = None
            else:
                time.sleep(0.001)
    finally:
        if exited is not None:
            os.close(exited)


def _exit_notice(pid):
    """A descriptor that becomes readable when process `pid` has exited (None if it is gone)."""
    if pid is None:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _has_children():
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _process_table():
    table = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()
            if fields[0] != b"Z":
                table.append((int(name), int(fields[1])))
    return table


def _descends(pid, ancestor, parents):
    seen = set()
    while pid in parents and pid not in seen:
        seen.add(pid)
        pid = parents[pid]
        if pid == ancestor:
            return True
    return False


def _reap():
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


class ProgramClock:
    """A process's time as on a core of its own: wall-clock seconds since `restart()` less the
    time it spent runnable but waiting for a CPU, from the scheduler's per-thread run_delay
    (/proc/<pid>/task/<tid>/schedstat): the longest such wait among its threads, so a program
    working on a thread while its main thread waits in join() is timed by that thread. Beside
    other programs, or the model generating, a program gets the time it would have had alone,
    as a grader with one process per core gives it. Where the kernel keeps no such statistics
    it is plain wall-clock time. A wait still going on counts once the thread runs again."""

    def __init__(self, pid):
        self._tasks = "/proc/%d/task" % pid
        self.restart()

    def restart(self):
        self._started, self._at_start, self._waited = time.monotonic(), self._delays(), 0.0

    def wall(self):
        return time.monotonic() - self._started

    def elapsed(self):
        delays = self._delays()
        waits = [delay - self._at_start.get(tid, 0) for tid, delay in delays.items()]
        self._waited = max([self._waited, *waits])  # never less: a thread that ended keeps its wait
        return self.wall() - self._waited

    def _delays(self):
        delays = {}
        with contextlib.suppress(OSError):
            for tid in os.listdir(self._tasks):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    with open("%s/%s/schedstat" % (self._tasks, tid), "rb") as fh:
                        delays[tid] = int(fh.read().split()[1]) / 1e9
        return delays


def fork():
    """os.fork() for the single-threaded worker, without Python's at-fork work.

    os.fork() re-initialises the interpreter's thread state in the child and runs every
    at-fork hook the preloaded modules registered (threading's, logging's, random's): 0.5 ms
    of a HumanEval program's ~5 ms, most of it copy-on-write faults on the worker's heap.
    With one thread and the GIL held across libc's fork() there is nothing to re-initialise;
    the child only draws a fresh seed for `random`, as os.fork()'s hook does, so programs
    do not all see the same random numbers."""
    if _thread._count():  # a thread of Python's: its state in the child needs os.fork()'s work
        return os.fork()
    pid = _LIBC.fork()
    if pid < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    if pid == 0:
        random.seed()
    return pid
