"""Find or build `llama-server`.

Order: an explicit path, `$PATH`, then a build cached under
`~/.cache/benchkit/llama-server/<llama-cpp-python version>-<flags hash>/llama-server`, made once
from the llama.cpp sources that the llama-cpp-python sdist vendors (PyPI only; ~4 min on 2 cores).

    python -m benchkit.backends.server_build     # build (or find) it now and print its path
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from filelock import FileLock

from benchkit.errors import ConfigError, ModelLoadError
from benchkit.model_file import CACHE_DIR

SDIST_VERSION = "0.3.36"
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DBUILD_SHARED_LIBS=OFF",
]


def find_llama_server(explicit: str | os.PathLike | None = None, build: bool = True) -> Path:
    """The llama-server binary to use; builds it once when neither a path nor $PATH has one."""
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError("not an executable llama-server binary", where=str(path))
        return path
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    cached = cached_binary()
    if cached.exists():
        return cached
    if not build:
        raise ModelLoadError(
            "no llama-server: give --server-binary, put llama-server on $PATH, or build it with "
            "`python -m benchkit.backends.server_build`")
    return build_llama_server()


def _extra_flags() -> list[str]:
    """The user's CMAKE_ARGS (e.g. -DGGML_CUDA=on), default a portable CPU build."""
    return (os.environ.get("CMAKE_ARGS") or "-DGGML_NATIVE=OFF").split()


def cached_binary() -> Path:
    key = hashlib.sha256(" ".join(CMAKE_FLAGS + _extra_flags()).encode()).hexdigest()[:12]
    return CACHE_DIR / "llama-server" / f"{SDIST_VERSION}-{key}" / "llama-server"


def build_llama_server() -> Path:
    target = cached_binary()
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):  # two runs never build at once
        if target.exists():
            return target
        with tempfile.TemporaryDirectory(prefix="benchkit-llama-server-") as tmp:
            source = _vendored_sources(Path(tmp))
            build = Path(tmp) / "build"
            _run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS, *_extra_flags()], tmp)
            _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(os.cpu_count() or 2)], tmp)
            built = next(build.rglob("llama-server"), None)
            if built is None:
                raise ModelLoadError("the llama.cpp build finished without a llama-server binary")
            shutil.copy2(built, target.with_suffix(".tmp"))
            os.replace(target.with_suffix(".tmp"), target)
    return target


def _vendored_sources(tmp: Path) -> Path:
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-cache-dir",
          "-d", str(tmp), f"llama-cpp-python=={SDIST_VERSION}"], str(tmp))
    sdist = next(tmp.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp, filter="data")
    return next(tmp.glob("llama_cpp_python-*/vendor/llama.cpp"))


def _run(command: list[str], cwd: str) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ModelLoadError(f"building llama-server failed at `{' '.join(command[:3])} …`:\n{tail}")


if __name__ == "__main__":
    print(find_llama_server())
