"""Grading cost must not depend on where Python is installed: a venv under /tmp is bound
read-only inside the sandbox's own /tmp, and the worker's clean-up after each program must
never walk it (a walk over every installed file, ~85 ms a program with a real venv)."""

import ctypes
import os
import subprocess
import sys

import pytest

from benchkit import sandbox as sandbox_module
from benchkit.sandbox import ISOLATION_BWRAP, Job, Sandbox

IN_OPEN = 0x20
IN_NONBLOCK = 0o4000


@pytest.fixture
def venv_under_tmp(tmp_path, monkeypatch):
    """A real venv under /tmp (pytest's tmp_path), with a package tree nobody imports."""
    assert str(tmp_path).startswith("/tmp/")
    venv = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    probe = [site / "untouched" / f"pkg{i}" for i in range(20)]
    for directory in probe:
        directory.mkdir(parents=True)
        for j in range(50):
            (directory / f"mod{j}.py").write_text("x = 1\n")
    monkeypatch.setattr(sys, "executable", str(venv / "bin" / "python"))
    monkeypatch.setattr(sys, "prefix", str(venv))
    sandbox_module._choose_isolation.cache_clear()
    yield probe
    sandbox_module._choose_isolation.cache_clear()


def test_cleaning_never_walks_a_venv_bound_inside_tmp(venv_under_tmp):
    libc = ctypes.CDLL(None, use_errno=True)
    watch = libc.inotify_init1(IN_NONBLOCK)
    assert watch >= 0
    try:
        with Sandbox(workers=1) as box:
            assert box.isolation.startswith(ISOLATION_BWRAP), "this test needs bubblewrap"
            assert box.submit(Job("assert True")).result().passed  # the worker is up
            for directory in venv_under_tmp:
                assert libc.inotify_add_watch(watch, str(directory).encode(), IN_OPEN) >= 0
            program = "open('/tmp/left-behind', 'w').write('x')\nimport os\nos.mkdir('/tmp/d')"
            outcomes = box.run([Job(program)] * 10)
            assert all(o.passed for o in outcomes), outcomes
            assert box.submit(Job("import os\nassert not os.path.exists('/tmp/left-behind')")).result().passed
        with pytest.raises(BlockingIOError):
            os.read(watch, 4096)  # an event here: the clean-up opened a directory of the venv
    finally:
        os.close(watch)
