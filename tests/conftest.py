import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchkit.config import RunConfig
from benchkit.model_file import embedded_model_path
from tests.chat_model import templated_copy

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

# What a marked test needs, and how to get it. Outside CI a missing one skips the test with
# that reason; in CI (CI=true, as .ci/run runs) it fails it: CI must run everything.
NEEDS = {
    "needs_bwrap": (
        lambda: shutil.which("bwrap") is not None,
        "bubblewrap is not installed (apt-get install bubblewrap; scripts/install.sh does it)",
    ),
    "needs_chromium": (
        lambda: shutil.which("chromium") is not None,
        "chromium is not installed (apt-get install chromium; scripts/install.sh does it)",
    ),
    "needs_shared": (
        lambda: (SHARED / "data" / "lcb").is_dir(),
        f"{SHARED}/data/lcb is missing (the project's shared data, beside the checkout)",
    ),
}


def pytest_configure(config):
    """Ctrl-C reaches the processes the tests start as it does from a terminal. A test run
    started in the background by a shell without job control (`pytest &`, a CI step's
    `cmd &`) inherits SIGINT ignored, and so would every benchkit process it starts, which then
    rightly keeps ignoring it (as it keeps `nohup`'s SIGHUP ignored): the interrupt tests would
    test nothing. A Python handler here is reset to the default in each child at exec."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_runtest_setup(item):
    for marker, (available, reason) in NEEDS.items():
        if item.get_closest_marker(marker) and not available():
            if os.environ.get("CI"):
                pytest.fail(f"CI must run this test: {reason}", pytrace=False)
            pytest.skip(reason)


@pytest.fixture(scope="session")
def model_path() -> Path:
    return embedded_model_path()


@pytest.fixture(scope="session")
def chat_model(model_path) -> Path:
    """The embedded model with a real chat template (Gemma 3's): see tests/chat_model.py."""
    return templated_copy(model_path)


@pytest.fixture
def results_dir(tmp_path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def small_config(results_dir) -> RunConfig:
    """A few problems, short answers: the real model, fast enough for tests."""
    return RunConfig(limit=4, max_tokens=48, results_dir=results_dir, grade_workers=2)


def stored_run(run_id: str, status: str = "complete", **results) -> dict:
    """A minimal run record of the current schema, for store and analysis tests."""
    return {
        "schema_version": 2,
        "run_id": run_id,
        "timestamp": "2026-11-25T10:00:00+00:00",
        "benchmark": "human_eval",
        "model": "m",
        "status": status,
        "results": results,
    }


def benchkit_cli(*args, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "benchkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        **kwargs,
    )


@pytest.fixture(scope="session")
def requantised_model(model_path) -> Path:
    """A second real GGUF: the embedded model requantised to Q4_0 by llama-quantize (built once
    from the vendored llama.cpp, like llama-server, and cached)."""
    from benchkit.model_file import requantised

    return requantised(model_path, "Q4_0")


@pytest.fixture(scope="session")
def grading_pool():
    """One sandbox pool for the in-process runs of the fast tests (self-checked once per limits),
    as a sweep shares one: each run would otherwise start workers and self-check them anew."""
    from benchkit.grading import GradingPool

    with GradingPool(2) as pool:
        yield pool
