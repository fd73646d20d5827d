"""The "lcb" harness (LiveCodeBench; inside the sandbox, stdlib only): tests run one by one with
the official semantics. The child sends back what the program produced; the worker compares.

A job's payload (benchkit.benchmarks.lcb.lcb_job): "tests", {"input", "output"} pairs; "mode",
"stdio" (the input on stdin) or "call" (the input as the arguments of "fn_name"); "corrected",
the comparison without the official grader's known false negatives. The outcome's details:
"tests_passed", and "failed_test", the index of the first failing test."""

import builtins
import contextlib
import functools
import io
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
import types

from harness import (
    GUARDED_BUILTINS,
    MESSAGE_LIMIT,
    confine_files,
    isolate_descriptors,
    limit_resources,
    parse_message,
    reliability_guard,
)
from preload import as_in_reference
from processes import ProgramClock, fork, kill_descendants

TEST_OUTPUT_LIMIT = 16 * 1024 * 1024
MIN_WAIT_SECONDS = 0.01  # a starved program's own time nears its limit in ever smaller steps
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
RECURSION_LIMIT = 50000  # the prelude's last line, run in each program's child
# In place of the prelude before a program: as many lines, so the program keeps its line
# numbers, and a statement first, so that what only the top of a file may hold (a docstring,
# `from __future__ import ...`) is refused or ignored there as after the prelude
_PADDING = "pass" + "\n" * LCB_IMPORTS.count("\n")


def _prelude_module():
    """The official prelude (LCB_IMPORTS) run, once, in the worker (at its import, before it
    freezes its heap), into the `tmp_sol` module every program starts from. A child then runs
    only the program's own code, in its copy-on-write view of that module. Running the prelude
    in each child instead binds its ~800 names again, which writes the reference count of
    every one of those objects, and so copies some 500 pages of the worker's heap per program
    (1.7 ms)."""
    module = types.ModuleType("tmp_sol", "")
    exec(LCB_IMPORTS.replace("sys.setrecursionlimit(%d)\n" % RECURSION_LIMIT, ""), module.__dict__)
    return module


_PRELUDE = _prelude_module()


def run_lcb_job(job, scratch_root, ruleset):
    """LiveCodeBench semantics: the child runs the tests' inputs one at a time and sends back
    what the program produced; the expected outputs stay in this process, so a program can
    neither read them nor fake a match. The first failing test ends the job."""
    scratch = tempfile.mkdtemp(dir=scratch_root)
    out_r, out_w = os.pipe()
    ctl_r, ctl_w = os.pipe()
    started = time.monotonic()
    pid = fork()
    if pid == 0:
        os.close(out_r)
        os.close(ctl_w)
        as_in_reference("tests")
        _test_child(job, scratch, out_w, ctl_r, ruleset)
    os.close(out_w)
    os.close(ctl_r)
    try:
        outcome = _judge_tests(job, pid, out_r, ctl_w)
    finally:
        kill_descendants(pid)  # the child too
        os.close(out_r)
        os.close(ctl_w)
        shutil.rmtree(scratch, ignore_errors=True)
    outcome["seconds"] = round(time.monotonic() - started, 4)
    return outcome


def _judge_tests(job, pid, out_r, ctl_w):
    messages = _MessageReader(out_r, pid, job)
    loaded = messages.next()  # the program compiled and defined what is called
    if loaded is None or loaded.get("status") != "ok":
        loaded = loaded or {
            "status": "timeout" if os.waitpid(pid, os.WNOHANG)[0] == 0 else "crashed",
            "message": "failed: the program did not load",
        }
        return _failure(str(loaded.get("status")), loaded.get("error_type"), str(loaded.get("message")), 0)
    payload = job["payload"]
    for index, test in enumerate(payload["tests"]):
        messages.clock.restart()
        with contextlib.suppress(OSError):  # a child gone already: its pipe's end tells
            os.write(ctl_w, b"c")  # the test starts now
        message = messages.next()
        if message is None:
            alive = os.waitpid(pid, os.WNOHANG)[0] == 0
            return _failure(
                "timeout" if alive else "crashed",
                None,
                "timed out" if alive else "failed: the program died",
                index,
            )
        if message.get("status") != "ok":
            return _failure(
                str(message.get("status")), message.get("error_type"), str(message.get("message")), index
            )
        if not outputs_equal(
            payload["mode"], message.get("output", ""), test["output"], payload["corrected"]
        ):
            return _failure("failed", "WrongAnswer", "failed: wrong answer", index)
    details = {"tests_passed": len(payload["tests"])}
    return {"status": "passed", "error_type": None, "message": "passed", "details": details}


def _failure(status, error_type, message, index):
    return {
        "status": status,
        "error_type": error_type,
        "message": message[:MESSAGE_LIMIT],
        "details": {"tests_passed": index, "failed_test": index},
    }


class _MessageReader:
    """The child's JSON lines, each within the time limit of the program's own time (its
    `ProgramClock`, restarted at each test), as the official grader gives each test a core of
    its own for its time limit: a verdict does not depend on what else runs on the machine.
    At the limit the program is interrupted as the official alarm interrupts it (SIGALRM: it
    may catch it), then has the job's grace_seconds more to answer. On a machine so loaded
    that the program gets less than `slowest_share` of a core, the wait ends anyway after
    limit / slowest_share seconds of wall-clock time."""

    def __init__(self, fd, pid, job):
        self.fd, self.buffer, self.pid = fd, bytearray(), pid
        self.seconds, self.grace = job["timeout"], job["grace_seconds"]
        self.slowest_share = job["slowest_share"]
        self.clock = ProgramClock(pid)

    def next(self):
        message = self._next_within(self.seconds)
        if message is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGALRM)
            message = self._next_within(self.seconds + self.grace)
        return message

    def _next_within(self, seconds):
        wall_limit = seconds / self.slowest_share
        while b"\n" not in self.buffer:
            remaining = min(seconds - self.clock.elapsed(), wall_limit - self.clock.wall())
            if remaining <= 0:
                return None
            if not select.select([self.fd], [], [], max(remaining, MIN_WAIT_SECONDS))[0]:
                continue  # the program waited for a CPU meanwhile: its own time is not up yet
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return parse_message(line.decode("utf-8", "replace"))


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
            body=body,
            decorator_list=[],
            lineno=-1,
        )
        return imports + "\n" + ast.unparse(imports_ast) + "\n" + ast.unparse(function)
    except Exception:
        return code


def _test_child(job, scratch, out_fd, ctl_fd, ruleset):
    try:
        confine_files(ruleset)  # the worker's memory holds the expected outputs
        out_fd, ctl_fd = isolate_descriptors(out_fd, ctl_fd)
        os.chdir(scratch)
        payload = job["payload"]
        # CPU time for loading and every test (each has its own limit), the alarms' grace too
        limit_resources(job, (len(payload["tests"]) + 1) * (job["timeout"] + job["grace_seconds"]))
        # the official grader allows 50,000 digits; the corrected comparison lifts the limit
        sys.set_int_max_str_digits(0 if payload["corrected"] else 50000)
        send = functools.partial(_send, out_fd)
        signal.signal(signal.SIGALRM, _raise_timeout)
        reliability_guard(keep_exit=True)  # LiveCodeBench's guard leaves builtins.exit alone
        try:
            with _time_limit():
                method = _load_solution(job["source"], payload)
        except BaseException as exc:
            send(_error_message(exc))
            return
        send({"status": "ok"})
        for test in payload["tests"]:
            if os.read(ctl_fd, 1) != b"c":  # the worker's clock for this test has started
                return
            send(_run_test(method, payload, test["input"]))
    finally:
        os._exit(0)


class _Timeout(Exception):
    pass


_timing = False  # in the child: whether the program is running (between sending messages)


def _raise_timeout(signum, frame):
    if _timing:  # the worker's alarm (its own time is up), or one the program set
        print("timeout occured: alarm went off")  # as the official handler: into a stdin test's output
        raise _Timeout("timed out")


@contextlib.contextmanager
def _time_limit():
    """The program runs; the worker times it (`_MessageReader`) and interrupts it with SIGALRM.
    A timer the program set is cancelled at both ends, as the official `alarm` calls replace
    and cancel it, so none carries into the next test."""
    global _timing
    signal.setitimer(signal.ITIMER_REAL, 0)
    _timing = True
    try:
        yield
    finally:
        _timing = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def _send(fd, message):
    data = (json.dumps(message) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _error_message(exc):
    if isinstance(exc, _Timeout):
        return {"status": "timeout", "error_type": None, "message": "timed out"}
    status = (
        "memory" if isinstance(exc, MemoryError) else "output" if isinstance(exc, _OutputLimit) else "failed"
    )
    try:
        text = "failed: %r" % (exc,)
    except BaseException:
        text = "failed: <unprintable %s>" % type(exc).__name__
    return {"status": status, "error_type": type(exc).__name__, "message": text[:MESSAGE_LIMIT]}


def _load_solution(source, payload):
    """LiveCodeBench's compile step: prelude + program executed in a fresh module `tmp_sol`;
    stdin programs become `wrapped_function`, LeetCode programs are `Solution().<fn_name>`.
    The prelude comes already run (_PRELUDE); what differs from running it here is brought in
    line: the names it took from builtins that the reliability guard has since changed, and
    the recursion limit. The program keeps the line numbers it has after the prelude."""
    if payload["mode"] == "stdio":
        cleaned = clean_if_name(source)
        code = make_function(cleaned, "")
        name = "wrapped_function"
        if code is cleaned:  # no AST: the official runs the program as it is, without prelude
            return _method(_executed(cleaned, types.ModuleType("tmp_sol", "")), cleaned, name)
    else:
        code = "\n\n" + source
        name = payload["fn_name"]
    for guarded in GUARDED_BUILTINS:
        _PRELUDE.__dict__[guarded] = getattr(builtins, guarded)
    sys.setrecursionlimit(RECURSION_LIMIT)
    return _method(_executed(_PADDING + code, _PRELUDE), code, name)


def _executed(code, module):
    exec(code, module.__dict__)
    return module


def _method(module, code, name):
    solution = module.Solution() if "class Solution" in code else module
    method = getattr(solution, name, None)
    if method is None:
        raise AttributeError("the program defines no %s" % name)
    return method


def _run_test(method, payload, test_input):
    try:
        with _time_limit():
            if payload["mode"] == "stdio":
                output = _call_with_stdin(method, test_input, payload["corrected"])
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


def _mock_open_on_first_call(read_data):
    built = []

    def open_(*args, **kwargs):
        if not built:
            from unittest.mock import mock_open

            built.append(mock_open(read_data=read_data))
        return built[0](*args, **kwargs)

    return open_


def _call_with_stdin(method, test_input, corrected=False):
    """LiveCodeBench's `call_method`: its five `unittest.mock.patch` decorators, applied as
    they apply (bottom-up, so read, readlines and readline are patched on the old stdin, and
    the program then sees a plain StringIO of the input, and open() serving it), undone in
    reverse order; sys.stdout is captured; SystemExit ends the program quietly. The patches
    are set and undone here directly: mock's machinery, run in each program's child, costs
    more than most programs' whole test. open() is the official mock_open, built at the
    program's first call."""
    lines = iter(test_input.split("\n"))
    stdin = sys.stdin
    patches = (
        (stdin, "read", lambda *args: test_input),
        (stdin, "readlines", lambda *args: test_input.split("\n")),
        (stdin, "readline", lambda *args: next(lines)),
        (sys, "stdin", io.StringIO(test_input)),
        (builtins, "open", _mock_open_on_first_call(test_input)),
    )
    captured = _CappedOutputWithBuffer() if corrected else _CappedOutput()
    saved = sys.stdout
    sys.stdout = captured
    applied = []
    try:
        for target, attribute, value in patches:
            applied.append(_patch(target, attribute, value))
        try:
            method()
        except SystemExit:
            pass
    finally:
        for undo in reversed(applied):
            undo()
        sys.stdout = saved
    return captured.getvalue()


def _patch(target, attribute, value):
    """`unittest.mock.patch.object(target, attribute, value)` entered; returns its exit: an
    attribute of the target's own is put back, an inherited one (a method) deleted again."""
    own = attribute in getattr(target, "__dict__", ())
    original = getattr(target, attribute)
    setattr(target, attribute, value)
    if own:
        return functools.partial(setattr, target, attribute, original)
    return functools.partial(delattr, target, attribute)
