"""The official LiveCodeBench grader (PyPI nvidia-livecodebench, installed without its ~40
dependencies), used as the reference in tests and bench scripts only.

Its `testing_util` needs only numpy; the package's __init__ pulls in dataset loaders, so the
module is loaded from its file. Each program is graded as the official `check_correctness`
does: a fresh process (its reliability guard cripples the process), a global time-out.
"""

import importlib.util
import json
import multiprocessing
from pathlib import Path


def _testing_util():
    spec = importlib.util.find_spec("livecodebench")
    if spec is None:
        raise RuntimeError("nvidia-livecodebench is not installed (scripts/install.sh installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "evaluation" / "testing_util.py"
    module_spec = importlib.util.spec_from_file_location("lcb_testing_util", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _run(sample, code, timeout, conn):
    import sys

    sys.set_int_max_str_digits(50000)
    results, metadata = _testing_util().run_test(sample, test=code, timeout=timeout)
    conn.send([r is True for r in results])


def official_verdict(problem, code: str, timeout: int = 6) -> bool:
    """True when the official grader passes `code` on the problem's tests (as benchkit loaded them)."""
    tests = problem.data["tests"]
    sample = {"input_output": json.dumps({
        "inputs": [t["input"] for t in tests], "outputs": [t["output"] for t in tests],
        "fn_name": problem.data["fn_name"] if problem.data["testtype"] == "functional" else None})}
    receive, send = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("fork").Process(target=_run, args=(sample, code, timeout, send))
    process.start()
    process.join((timeout + 1) * max(1, len(tests)) + 5)
    if process.is_alive():
        process.kill()
        process.join()
    if not receive.poll():
        return False  # crashed or killed by the global time-out
    results = receive.recv()
    return len(results) == len(tests) and all(results)
