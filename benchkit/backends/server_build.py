"""Find or build `llama-server` (and other tools of the same llama.cpp tree, e.g. `llama-bench`).

Order: an explicit path, `$PATH`, then a build cached under
`~/.cache/benchkit/llama-server/<llama-cpp-python version>-<flags hash>/<tool>`, made once
from the llama.cpp sources that the llama-cpp-python sdist vendors (PyPI only; ~4 min on 2 cores).

    python -m benchkit.backends.server_build                 # build (or find) llama-server now
    python -m benchkit.backends.server_build llama-bench     # any other target of the tree
    python -m benchkit.backends.server_build llama-server llama-quantize   # several, one build
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
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
]


def find_llama_server(explicit: str | os.PathLike | None = None, build: bool = True) -> Path:
    """The llama-server binary to use; builds it once when neither a path nor $PATH has one."""
    return find_tool("llama-server", explicit, build)


def find_tool(name: str, explicit: str | os.PathLike | None = None, build: bool = True) -> Path:
    """A llama.cpp tool (`llama-server`, `llama-bench`, …): the explicit path, $PATH, the cache,
    else built once from the vendored sources."""
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError(f"not an executable {name} binary", where=str(path))
        return path
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    cached = cached_binary(name)
    if cached.exists():
        return cached
    if not build:
        raise ModelLoadError(
            f"no {name}: give its path, put {name} on $PATH, or build it with "
            f"`python -m benchkit.backends.server_build {name}`"
        )
    return build_tools([name])[0]


def _extra_flags() -> list[str]:
    """The user's CMAKE_ARGS (e.g. -DGGML_CUDA=on), default a portable CPU build."""
    return (os.environ.get("CMAKE_ARGS") or "-DGGML_NATIVE=OFF").split()


def cached_binary(name: str = "llama-server") -> Path:
    key = hashlib.sha256(" ".join(CMAKE_FLAGS + _extra_flags()).encode()).hexdigest()[:12]
    return CACHE_DIR / "llama-server" / f"{SDIST_VERSION}-{key}" / name


def build_llama_server() -> Path:
    return build_tools(["llama-server"])[0]


def build_tools(names: list[str]) -> list[Path]:
    """Build the named targets of the vendored llama.cpp tree in one configure and build,
    each cached; targets already cached are not rebuilt."""
    targets = [cached_binary(name) for name in names]
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cached_binary()) + ".lock"):  # two runs never build at once
        missing = [t for t in targets if not t.exists()]
        if missing:
            _build(missing)
    return targets


def _build(targets: list[Path]) -> None:
    with tempfile.TemporaryDirectory(prefix="benchkit-llama-cpp-") as tmp:
        source = _vendored_sources(Path(tmp))
        build = Path(tmp) / "build"
        _run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS, *_extra_flags()], tmp)
        _run(
            [
                "cmake",
                "--build",
                str(build),
                "--target",
                *[t.name for t in targets],
                "-j",
                str(os.cpu_count() or 2),
            ],
            tmp,
        )
        for target in targets:
            built = next((p for p in build.rglob(target.name) if p.is_file()), None)
            if built is None:
                raise ModelLoadError(f"the llama.cpp build finished without a {target.name} binary")
            shutil.copy2(built, target.with_suffix(".tmp"))
            os.replace(target.with_suffix(".tmp"), target)


def _vendored_sources(tmp: Path) -> Path:
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-cache-dir",
            "-d",
            str(tmp),
            f"llama-cpp-python=={SDIST_VERSION}",
        ],
        str(tmp),
    )
    sdist = next(tmp.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp, filter="data")
    return next(tmp.glob("llama_cpp_python-*/vendor/llama.cpp"))


def _run(command: list[str], cwd: str) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ModelLoadError(f"building llama.cpp failed at `{' '.join(command[:3])} …`:\n{tail}")


if __name__ == "__main__":  # python -m benchkit.backends.server_build [TOOL ...]: one build for all
    for path in build_tools(sys.argv[1:] or ["llama-server"]):
        print(path)
