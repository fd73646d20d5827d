import subprocess
import sys
from pathlib import Path

import pytest

from benchkit.config import RunConfig
from benchkit.model_file import embedded_model_path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def model_path() -> Path:
    return embedded_model_path()


@pytest.fixture
def results_dir(tmp_path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def small_config(results_dir) -> RunConfig:
    """A few problems, short answers: the real model, fast enough for tests."""
    return RunConfig(limit=4, max_tokens=48, results_dir=results_dir, grade_workers=2)


def benchkit_cli(*args, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "benchkit", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, **kwargs)
