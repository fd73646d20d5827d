"""The warm worker: what runs inside the sandbox (standard library only).

`benchkit.sandbox` starts it as a script (``python -I worker.py``), with this directory bound
read-only at /sandbox under bubblewrap. It reads one job per line (JSON) on stdin and answers
one outcome per line on stdout. For each job it forks a child that closes every descriptor it
inherited, points 0/1/2 at /dev/null, works in a fresh scratch directory under rlimits and
applies the reference harness's reliability guard (harness.py). Then:

* mode "exec" (HumanEval, harness.py): the program runs on a thread started from C; the pass
  line, with a per-job nonce, is written by that C chain only if `exec` returned normally;
* modes "stdio"/"call" (LiveCodeBench, lcb_harness.py): the child runs the tests' inputs one
  at a time and sends back what the program produced; the expected outputs stay in the worker.

Exit status and printed text mean nothing. After each job every process the child left
behind is killed (processes.py) and the scratch directory removed.
"""

import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves this directory out

from harness import MESSAGE_LIMIT, parse_message, run_child  # noqa: E402
from lcb_harness import run_tests_job  # noqa: E402
from processes import INSIDE_BWRAP, kill_descendants  # noqa: E402

# Imported once here, so each forked program finds them loaded (what "warm" buys).
PRELOAD = ("subprocess", "faulthandler", "ast", "unittest.mock", "decimal", "types", "math", "re", "typing", "collections", "itertools",
           "functools", "heapq", "bisect", "string", "hashlib", "random", "statistics",
           "fractions", "decimal", "datetime", "copy", "operator", "array", "threading")
REPORT_LIMIT = 4096
PR_SET_CHILD_SUBREAPER = 36


def main():
    sys.set_int_max_str_digits(50000)  # as LiveCodeBench's grader, for huge integer outputs
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(name)
    proto_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    _become_subreaper()
    scratch_root = tempfile.mkdtemp(prefix="benchkit-")
    for line in proto_in:
        job = json.loads(line)
        outcome = run_job(job, scratch_root)
        if INSIDE_BWRAP:  # nothing a program leaves behind reaches the next program
            _empty("/tmp", keep=scratch_root)
            _empty("/dev/shm")
        outcome["id"] = job["id"]
        proto_out.write(json.dumps(outcome) + "\n")
        proto_out.flush()


def _empty(directory, keep=None):
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.path != keep:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def _become_subreaper():
    """Orphans of a job re-parent to this worker, so `kill_descendants` finds detached ones too."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        pass


def run_job(job, scratch_root):
    if job.get("mode", "exec") != "exec":
        return run_tests_job(job, scratch_root)
    scratch = tempfile.mkdtemp(dir=scratch_root)
    nonce = os.urandom(16).hex()
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        run_child(job, scratch, write_end, nonce)
    os.close(write_end)
    status = _wait(pid, job["timeout"], started)
    seconds = time.monotonic() - started
    kill_descendants()
    report = _read_report(read_end)
    os.close(read_end)
    shutil.rmtree(scratch, ignore_errors=True)
    return _verdict(status, report, nonce, seconds)


def _wait(pid, timeout, started):
    """Wait for the child up to `timeout` seconds; returns its wait status or None on time-out."""
    pidfd = os.pidfd_open(pid)
    try:
        remaining = timeout - (time.monotonic() - started)
        ready, _, _ = select.select([pidfd], [], [], max(remaining, 0))
        if not ready:
            return None  # kill_descendants() kills and reaps it with everything it started
        return os.waitpid(pid, 0)[1]
    finally:
        os.close(pidfd)




def _read_report(fd):
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while sum(map(len, chunks)) <= REPORT_LIMIT and (chunk := os.read(fd, REPORT_LIMIT)):
            chunks.append(chunk)
    return b"".join(chunks)


def _verdict(status, report, nonce, seconds):
    """Passed only with the genuine pass line; a pass claimed without the nonce is tampering."""
    outcome = {"seconds": round(seconds, 4)}
    if status is None:
        return {**outcome, "status": "timeout", "error_type": None, "message": "timed out"}
    reports = [parse_message(line) for line in report.decode("utf-8", "replace").splitlines()]
    if any(r is None or (r.get("status") == "passed" and r.get("nonce") != nonce) for r in reports):
        return {**outcome, "status": "crashed", "error_type": None,
                "message": "failed: tampered with the result channel"}
    if any(r["status"] == "passed" for r in reports):
        return {**outcome, "status": "passed", "error_type": None, "message": "passed"}
    if reports:
        first = reports[0]
        return {**outcome, "status": str(first.get("status")), "error_type": first.get("error_type"),
                "message": str(first.get("message"))[:MESSAGE_LIMIT]}
    return {**outcome, "status": "crashed", "error_type": None, "message": "failed: " + _died(status)}




def _died(status):
    if os.WIFSIGNALED(status):
        return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)} before finishing"


if __name__ == "__main__":
    main()
