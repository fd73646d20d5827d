"""The "exec" harness (HumanEval; inside the sandbox, stdlib only): the program holds its own
tests and passes by running to its end. The child (harness.py's `run_child`) runs it on a
thread started from C; the pass line, with a per-job nonce, is written by that C chain only if
`exec` returned normally. Exit status and printed text mean nothing."""

import contextlib
import os
import select
import shutil
import signal
import tempfile
import time

from harness import MESSAGE_LIMIT, parse_message, run_child
from preload import as_in_reference
from processes import fork, kill_descendants

REPORT_LIMIT = 4096


def run_exec_job(job, scratch_root, ruleset):
    scratch = tempfile.mkdtemp(dir=scratch_root)
    nonce = os.urandom(16).hex()
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        as_in_reference("exec")
        run_child(job, scratch, write_end, nonce, ruleset)
    os.close(write_end)
    status = _wait(pid, job["timeout"], started)
    seconds = time.monotonic() - started
    kill_descendants(pid)
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
        return {
            **outcome,
            "status": "crashed",
            "error_type": None,
            "message": "failed: tampered with the result channel",
        }
    if any(r["status"] == "passed" for r in reports):
        return {**outcome, "status": "passed", "error_type": None, "message": "passed"}
    if reports:
        first = reports[0]
        return {
            **outcome,
            "status": str(first.get("status")),
            "error_type": first.get("error_type"),
            "message": str(first.get("message"))[:MESSAGE_LIMIT],
        }
    return {**outcome, "status": "crashed", "error_type": None, "message": "failed: " + _died(status)}


def _died(status):
    if os.WIFSIGNALED(status):
        return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)} before finishing"
