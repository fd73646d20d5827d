"""One real attack per class: the verdict, and the absence of the side effect."""

import os
import socket
import textwrap
import threading
import time

import pytest

from benchkit import sandbox as sandbox_module
from benchkit.sandbox import ISOLATION_BWRAP, ISOLATION_PROCESS, Job, Sandbox

FAILING_TEST = "\nassert 1 == 2, 'the tests fail'\n"


@pytest.fixture(scope="module")
def box():
    with Sandbox(workers=2) as sandbox:
        assert sandbox.isolation.startswith(ISOLATION_BWRAP), "these tests need bubblewrap (scripts/install.sh)"
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
    "other threads' frames": """
        import sys
        frames = sys._current_frames()
    """,
    "trace function jumping over the asserts": """
        import sys
        def tracer(frame, event, arg):
            if event == "line" and "assert" in open(frame.f_code.co_filename).read():
                pass
            return tracer
        sys.settrace(tracer)
    """,
    "patched json encoder": """
        import json
        class Fake(json.JSONEncoder):
            def encode(self, o):
                if isinstance(o, dict) and "status" in o: o["status"] = "passed"
                return super().encode(o)
        json._default_encoder = Fake()
    """,
    "reading its own memory": """
        with open("/proc/self/mem", "rb") as fh:
            fh.read(1)
    """,
    "ctypes": """
        import ctypes
        ctypes.string_at(id(object()), 16)
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


def test_fork_bomb_is_contained(box):
    before = _my_process_count()
    outcome = run(box, """
    import posix
    while True:
        try: posix.fork()
        except OSError: pass
    """, timeout=2)
    assert outcome.status in ("processes", "timeout")
    time.sleep(0.5)
    assert _my_process_count() <= before + 4  # nothing left behind
    assert run(box, "assert True").passed


def test_memory_bomb_is_contained(box):
    outcome = run(box, "x = []\nwhile True:\n    x.append(bytearray(50 * 1024**2))", memory_mb=512)
    assert outcome.status == "memory"


def test_disk_filler_is_contained(box):
    outcome = run(box, """
    with open("big", "wb") as fh:
        while True:
            fh.write(b"x" * 1024 * 1024)
    """, timeout=5)
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
    paths = [{str(victim)!r}, "../../../../../../{str(victim).lstrip('/')}",
             "/proc/1/cwd/victim.txt", "~/benchkit-was-here", {home + '/benchkit-was-here'!r}]
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
    uid = os.getuid()
    return sum(1 for n in os.listdir("/proc") if n.isdigit() and _uid(n) == uid)


def _uid(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
