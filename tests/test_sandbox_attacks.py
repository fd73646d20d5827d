"""One real attack per class: the verdict, and the absence of the side effect."""

import importlib.util
import os
import shutil
import socket
import textwrap
import threading
import time

import pytest

from benchkit import sandbox as sandbox_module
from benchkit.benchmarks.lcb import lcb_job
from benchkit.sandbox import ISOLATION_BWRAP, ISOLATION_PROCESS, Job, Sandbox

FAILING_TEST = "\nassert 1 == 2, 'the tests fail'\n"


@pytest.fixture(scope="module")
def box():
    with Sandbox(workers=2) as sandbox:
        assert sandbox.isolation.startswith(ISOLATION_BWRAP), (
            "these tests need bubblewrap (scripts/install.sh)"
        )
        yield sandbox


def run(box, source, **limits):
    return box.submit(Job(textwrap.dedent(source), **limits)).result()


# ------------------------------------------------------------------ never a false pass
FALSE_PASS = {
    "frame walk to the harness": """
        import sys
        frame, found = sys._getframe(), []
        while frame is not None:
            found += [v for v in frame.f_locals.values() if isinstance(v, bytes) and b"nonce" in v]
            frame = frame.f_back
        import os
        for line in found:
            for fd in range(3, 1300):
                try: os.write(fd, line)
                except OSError: pass
        os._exit(0)
    """,
    "garbage collector scan": """
        import gc, os
        for obj in gc.get_objects():
            if isinstance(obj, bytes) and b"nonce" in obj:
                for fd in range(3, 1300):
                    try: os.write(fd, obj)
                    except OSError: pass
        os._exit(0)
    """,
    "patched json encoder": """
        import json
        class Fake(json.JSONEncoder):
            def encode(self, o):
                if isinstance(o, dict) and "status" in o: o["status"] = "passed"
                return super().encode(o)
        json._default_encoder = Fake()
    """,
    "silent thread exit": """
        import _thread
        _thread.exit()
    """,
    "lingering thread that exits 0": """
        import threading, os, time
        threading.Thread(target=lambda: (time.sleep(0.05), os._exit(0))).start()
    """,
}


@pytest.mark.parametrize("name", FALSE_PASS)
def test_no_trick_turns_a_failing_program_into_a_pass(box, name):
    assert run(box, FALSE_PASS[name] + FAILING_TEST, timeout=2).status != "passed"


# Real attempts at the pass mechanism (sandbox_worker/harness.py): the pass line, nonce and all,
# lives in the child's memory (run_child's frame) and is written by a C-started thread after
# exec returns. Each attack below forges a pass when its defence is taken out (UNDEFENDED, the
# test after) and fails with it in place.
FAILING_CHECK = """
def candidate(x):
    return x + 1
def check(f):
    assert f(1) == 3, "the tests fail"
    return
check(candidate)
"""
MEMORY_SCAN = r"""
import os, re
PASS = re.compile(rb'\{"nonce": "[0-9a-f]{32}", "status": "passed", "error_type": null, "message": "passed"\}\n')
def regions():
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if fields[1].startswith("rw") and end - start < 1 << 30:
                yield start, end
def forge(line):
    for fd in range(3, 1300):   # the report pipe is somewhere up there
        try:
            os.write(fd, line)
        except OSError:
            pass
    os._exit(0)
"""
FRAMES = """
import sys, os
for frame in sys._current_frames().values():   # the main thread waits in the harness
    while frame is not None:
        line, fd = frame.f_locals.get("pass_line"), frame.f_locals.get("report_fd")
        if isinstance(line, bytes) and isinstance(fd, int):
            os.write(fd, line)
            os._exit(0)
        frame = frame.f_back
"""
TRACER = """
import sys
def tracer(frame, event, arg):   # jump from the assert to the next line
    if event == "line" and frame.f_code.co_name == "check" and frame.f_lineno == frame.f_code.co_firstlineno + 1:
        frame.f_lineno = frame.f_lineno + 1
    return tracer
sys.settrace(tracer)
"""
PROC_MEM = (
    MEMORY_SCAN
    + """
with open("/proc/self/mem", "rb", buffering=0) as mem:
    for start, end in regions():
        try:
            mem.seek(start)
            found = PASS.search(mem.read(end - start))
        except (OSError, OverflowError, ValueError):
            continue
        if found:
            break
forge(found.group())
"""
)
CTYPES = """
import ctypes, os
api = ctypes.pythonapi   # CPython's own API: every thread's current frame
api.PyInterpreterState_Main.restype = ctypes.c_void_p
api.PyInterpreterState_ThreadHead.restype = api.PyThreadState_Next.restype = ctypes.c_void_p
api.PyInterpreterState_ThreadHead.argtypes = api.PyThreadState_Next.argtypes = [ctypes.c_void_p]
api.PyThreadState_GetFrame.restype, api.PyThreadState_GetFrame.argtypes = ctypes.py_object, [ctypes.c_void_p]
state = api.PyInterpreterState_ThreadHead(api.PyInterpreterState_Main())
while state:
    try:
        frame = api.PyThreadState_GetFrame(state)
    except ValueError:
        frame = None
    while frame is not None:
        line, fd = frame.f_locals.get("pass_line"), frame.f_locals.get("report_fd")
        if isinstance(line, bytes) and isinstance(fd, int):
            os.write(fd, line)
            os._exit(0)
        frame = frame.f_back
    state = api.PyThreadState_Next(state)
"""
DISARM_THE_HOOK = "import sys\nsys.unraisablehook.func.__globals__['_BLOCKED_EVENTS'] = frozenset()\n"
PATCH_REALPATH = "import posixpath\nposixpath.realpath = lambda path, *args, **kwargs: '/nothing'\n"
REAL_ATTACKS = {
    "other threads' frames": FRAMES,
    "trace function jumping over the asserts": TRACER,
    "reading its own memory": PROC_MEM,
    "ctypes": CTYPES,
    # these two gave false passes before the audit hook stopped reading module globals
    "audit hook disarmed through the harness's globals, then other threads' frames": DISARM_THE_HOOK + FRAMES,
    "audit hook disarmed through the harness's globals, then ctypes": DISARM_THE_HOOK + CTYPES,
    "os.path patched, then its own memory": PATCH_REALPATH + PROC_MEM,
}


def _worker_module(name):
    """A module of sandbox_worker/ (imported by path: it is a script directory, not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"sandbox_worker_{name}", sandbox_module.WORKER_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# each attack's defence, taken out of a copy of sandbox_worker/: (file, text, replacement)
BLOCKED_CTYPES = sorted(e for e in _worker_module("harness")._BLOCKED_EVENTS if e.startswith("ctypes."))
NO_PROC_DEFENCE = [
    ("harness.py", 'if event == "open" and _proc is not None', "if False"),
    ("harness.py", "        confine_files(ruleset)\n", ""),
]
UNDEFENDED = {
    "other threads' frames": [("harness.py", '"sys._current_frames",', "")],
    "trace function jumping over the asserts": [("harness.py", '"sys.settrace",', "")],
    "reading its own memory": NO_PROC_DEFENCE,
    "ctypes": [("harness.py", f'"{event}",', "") for event in BLOCKED_CTYPES],
}


@pytest.mark.parametrize("name", REAL_ATTACKS)
def test_real_attacks_on_the_pass_mechanism_fail(box, name):
    outcome = run(box, REAL_ATTACKS[name] + FAILING_CHECK, timeout=3)
    assert outcome.status == "failed" and outcome.error_type in ("RuntimeError", "PermissionError"), outcome
    assert "blocked by the benchkit sandbox" in outcome.message or "Permission denied" in outcome.message


@pytest.fixture
def undefended(tmp_path, monkeypatch):
    """A sandbox whose worker lacks the given defences (a patched copy of sandbox_worker/)."""

    def make(patches):
        copy = tmp_path / "sandbox_worker"
        shutil.copytree(sandbox_module.WORKER_DIR, copy)
        for name, text, replacement in patches:
            source = (copy / name).read_text()
            assert text in source, f"the defence is no longer where this test looks: {text!r}"
            (copy / name).write_text(source.replace(text, replacement))
        monkeypatch.setattr(sandbox_module, "WORKER_DIR", copy)
        sandbox_module._choose_isolation.cache_clear()
        return Sandbox(workers=1)

    yield make
    sandbox_module._choose_isolation.cache_clear()


@pytest.mark.slow
@pytest.mark.parametrize("name", UNDEFENDED)
def test_each_real_attack_forges_a_pass_without_its_defence(undefended, name):
    with undefended(UNDEFENDED[name]) as sandbox:
        assert run(sandbox, REAL_ATTACKS[name] + FAILING_CHECK, timeout=3).passed


LCB_EXPECTED_OUTPUT_THIEF = r"""
import os, re, sys, json
given = sys.stdin.read()
pattern = re.compile(re.escape(('"input": ' + json.dumps(given) + ', "output": ').encode()) + rb'"((?:[^"\\]|\\.)*)"')
worker = os.getppid()
with open("/proc/%d/maps" % worker) as maps, open("/proc/%d/mem" % worker, "rb", buffering=0) as mem:
    for line in maps:
        fields = line.split()
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if not fields[1].startswith("rw") or end - start > 1 << 30:
            continue
        try:
            mem.seek(start)
            memory = mem.read(end - start)
        except (OSError, ValueError, OverflowError):
            continue
        for found in pattern.finditer(memory):
            try:
                answer = json.loads(b'"' + found.group(1) + b'"')
            except ValueError:
                continue
            print(answer, end="")
            sys.exit(0)
"""
LCB_SECRET_TEST = [{"input": "3 4\n", "output": "the expected output 7431\n"}]


def test_lcb_program_cannot_read_the_expected_outputs_from_its_worker(box):
    outcome = box.submit(lcb_job(LCB_EXPECTED_OUTPUT_THIEF, LCB_SECRET_TEST, timeout=6)).result()
    assert outcome.status == "failed" and outcome.error_type == "PermissionError", outcome


@pytest.mark.slow
def test_lcb_expected_output_thief_passes_without_its_defence(undefended):
    patches = [
        ("worker.py", "    _not_dumpable()\n", ""),
        ("lcb_harness.py", "        confine_files(ruleset)", "        pass"),
    ]
    with undefended(patches) as sandbox:
        job = lcb_job(LCB_EXPECTED_OUTPUT_THIEF, LCB_SECRET_TEST, timeout=6)
        assert sandbox.submit(job).result().passed


def test_honest_programs_still_pass(box):
    source = """
    import collections, threading, sys, json, re
    Point = collections.namedtuple("Point", "x y")   # uses sys._getframe(1) internally
    sys.setrecursionlimit(5000)
    def depth(n): return 0 if n == 0 else 1 + depth(n - 1)
    out = []
    t = threading.Thread(target=lambda: out.append(json.dumps({"a": 1})))
    t.start(); t.join()
    assert Point(1, 2).x == 1 and depth(3000) == 3000 and out == ['{"a": 1}']
    print("noise"); sys.stderr.write("noise")
    """
    assert run(box, source).passed


# ------------------------------------------------------------- never harm to the host
def test_cannot_kill_the_grader_or_processes_by_name(box):
    me = os.getpid()
    source = f"""
    import posix, signal
    for pid in [{me}, 1, -1]:
        try: posix.kill(pid, signal.SIGKILL)
        except OSError: pass
    for name in posix.listdir("/proc"):
        if name.isdigit():
            try:
                if b"python" in open(f"/proc/{{name}}/cmdline", "rb").read():
                    posix.kill(int(name), signal.SIGKILL)
            except OSError: pass
    """
    run(box, source)
    assert all(o.passed for o in box.run([Job("assert True")] * 10))  # the grader and its pool live


@pytest.mark.slow
def test_fork_bomb_is_contained(box):
    before = _my_process_count()
    outcome = run(
        box,
        """
    import posix
    while True:
        try: posix.fork()
        except OSError: pass
    """,
        timeout=2,
    )
    assert outcome.status in ("processes", "timeout")
    deadline = time.monotonic() + 10
    while _my_process_count() > before and time.monotonic() < deadline:  # the kill is being reaped
        time.sleep(0.05)
    assert _my_process_count() <= before  # nothing left behind
    assert run(box, "assert True").passed


def test_memory_bomb_is_contained(box):
    outcome = run(box, "x = []\nwhile True:\n    x.append(bytearray(50 * 1024**2))", memory_mb=512)
    assert outcome.status == "memory"


def test_disk_filler_is_contained(box):
    outcome = run(
        box,
        """
    with open("big", "wb") as fh:
        while True:
            fh.write(b"x" * 1024 * 1024)
    """,
        timeout=5,
    )
    assert outcome.status == "disk"


def test_output_flood_is_swallowed(box):
    outcome = run(box, "import os\nfor _ in range(10**6):\n    os.write(1, b'x' * 4096)", timeout=2)
    assert outcome.status in ("passed", "timeout")  # /dev/null absorbs it; the worker is unharmed
    assert run(box, "assert True").passed


def test_cannot_write_or_delete_host_files(box, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    home = os.path.expanduser("~")
    source = f"""
    import posix
    paths = [{str(victim)!r}, "../../../../../../{str(victim).lstrip("/")}",
             "/proc/1/cwd/victim.txt", "~/benchkit-was-here", {home + "/benchkit-was-here"!r}]
    for p in paths:
        try: open(p, "w").write("owned")
        except OSError: pass
        try: posix.unlink(p)
        except OSError: pass
    """
    run(box, source)
    assert victim.read_text() == "precious"
    assert not os.path.exists(os.path.join(home, "benchkit-was-here"))


def test_cannot_read_results_or_expected_outputs(box, tmp_path):
    secret = tmp_path / "benchmark_results.json"
    secret.write_text('{"answer": 42}')
    assert run(box, f"print(open({str(secret)!r}).read())").status == "failed"
    assert run(box, f"import os\nassert not os.path.exists({str(tmp_path)!r})").passed


@pytest.mark.slow
def test_no_network_even_to_localhost(box):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: _accept(server, accepted))
    thread.start()
    outcome = run(box, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)")
    thread.join()
    server.close()
    assert outcome.status == "failed" and accepted == []


def test_fallback_without_namespaces_warns_and_says_so(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    sandbox_module._choose_isolation.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="bubblewrap sandbox unavailable"):
            box = Sandbox(workers=1)
        with box:
            assert box.isolation.startswith(ISOLATION_PROCESS)
            assert box.submit(Job("assert True")).result().passed
    finally:
        sandbox_module._choose_isolation.cache_clear()


def _accept(server, accepted):
    try:
        accepted.append(server.accept())
    except OSError:
        pass


def _my_process_count():
    """Processes below this test process (the sandbox's workers and whatever they started):
    other processes of this user, on a shared machine, come and go and must not count."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    parents[int(name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - mine
        mine |= frontier
    return len(mine)
