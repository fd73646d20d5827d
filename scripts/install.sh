#!/usr/bin/env bash
# Set up benchkit in ./.venv on a fresh machine (Python >= 3.10, pip, a C/C++ compiler, cmake).
#   CMAKE_ARGS  llama.cpp build flags. Default "-DGGML_NATIVE=OFF": a portable AVX2 build
#               (a -march=native build crashes on CPUs whose AMX faults in VMs).
#               NVIDIA GPU: CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=OFF".
#   PYTHON      the interpreter for the venv (default python3).
# llama-cpp-python is built once per (version, CMAKE_ARGS) into ~/.cache/benchkit/wheels;
# pip's own wheel cache is bypassed because it ignores CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PYTHON_VERSION=0.3.36
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
PYTHON="${PYTHON:-python3}"

# Debian packages: bubblewrap, the sandbox for generated code; chromium, the browser the
# report tests open pages in (development only: set BENCHKIT_NO_BROWSER=1 to skip it)
packages=()
command -v bwrap >/dev/null 2>&1 || packages+=(bubblewrap)
[ -n "${BENCHKIT_NO_BROWSER:-}" ] || command -v chromium >/dev/null 2>&1 || packages+=(chromium)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${packages[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    echo "warning: not installed: ${packages[*]} (Debian/Ubuntu: sudo apt-get install ${packages[*]})." >&2
    echo "         Without bubblewrap generated code runs without namespaces; without chromium" >&2
    echo "         the report tests fail." >&2
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip

key=$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)
wheels="${BENCHKIT_CACHE:-$HOME/.cache/benchkit}/wheels/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION-$key"
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION with CMAKE_ARGS='$CMAKE_ARGS' (3-6 minutes, once)"
  .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir -w "$wheels.tmp" \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  mv "$wheels.tmp" "$wheels"
fi
.venv/bin/python -m pip install -q "$wheels"/llama_cpp_python-*.whl
.venv/bin/python -m pip install -q -e ".[dev]"
# the official LiveCodeBench grader, a reference for tests and bench/ only (its testing_util
# needs nothing beyond numpy; its ~40 dependencies are for dataset downloads we never do)
.venv/bin/python -m pip install -q --no-deps "nvidia-livecodebench==26.3"
mkdir -p results/reports
# JupyterLab (a dependency) refuses to start as root unless told; whoever installs as root
# runs it as root, so say it once in the venv's own Jupyter config, not on every command line
if [ "$(id -u)" = 0 ]; then
  mkdir -p .venv/etc/jupyter
  printf '{"ServerApp": {"allow_root": true}}\n' > .venv/etc/jupyter/jupyter_server_config.json
fi
echo "benchkit installed in .venv ($(.venv/bin/benchkit --help >/dev/null && echo ok));" \
  "explore the notebooks with: .venv/bin/jupyter lab"
