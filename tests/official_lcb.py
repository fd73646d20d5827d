"""The official LiveCodeBench grader (PyPI nvidia-livecodebench, installed without its ~40
dependencies), used as the reference in tests and bench scripts only.

`codegen_verdicts` calls its own entry point, `livecodebench.evaluation.codegen_metrics`
(a process pool over programs; per program a Manager and a process that runs `run_test`
under the reliability guard, 6 s a test, a global backstop). `official_verdict` grades one
program with `run_test` in a fresh process, as its `check_correctness` does.
"""

import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
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


def official_sample(problem) -> dict:
    """The official record a grader reads: the problem's tests as benchkit loaded them."""
    tests = problem.data["tests"]
    return {
        "input_output": json.dumps(
            {
                "inputs": [t["input"] for t in tests],
                "outputs": [t["output"] for t in tests],
                "fn_name": problem.data["fn_name"] if problem.data["testtype"] == "functional" else None,
            }
        )
    }


def codegen_verdicts(problems, codes, processes=None, timeout=6) -> list[bool]:
    """One verdict per (problem, code), from the official `codegen_metrics` itself, called in a
    fresh interpreter (so programs see only the modules the official grader loads), with as
    many processes as cores unless told."""
    with tempfile.TemporaryDirectory() as tmp:
        request, verdicts = Path(tmp) / "request.json", Path(tmp) / "verdicts.json"
        request.write_text(
            json.dumps(
                {
                    "samples": [official_sample(p) for p in problems],
                    "codes": list(codes),
                    "timeout": timeout,
                    "processes": processes or os.cpu_count(),
                }
            )
        )
        subprocess.run(
            [sys.executable, __file__, str(request), str(verdicts)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return json.loads(verdicts.read_text())


def _codegen_main(request_path, verdicts_path):
    """A program passes when every test result is > 0 (True), as `compute_metrics_from_results`
    counts."""
    sys.set_int_max_str_digits(50000)  # as the official runner's entry point sets it
    from livecodebench.evaluation import codegen_metrics

    request = json.loads(Path(request_path).read_text())
    _, results, _ = codegen_metrics(
        request["samples"],
        [[c] for c in request["codes"]],
        k_list=[1],
        num_process_evaluate=request["processes"],
        timeout=request["timeout"],
    )
    verdicts = [all(r > 0 for r in results[i][0]) for i in range(len(request["codes"]))]
    Path(verdicts_path).write_text(json.dumps(verdicts))


def official_run_seconds(problems, codes, timeout=6) -> list[float | None]:
    """Wall seconds of the official `run_test` on each (problem, code), one after another in a
    plain interpreter (no process, Manager or pool per program): what the programs themselves
    cost, the floor under any grader. None for a program that ended that interpreter (the
    next one goes on in a fresh interpreter)."""
    seconds: list[float | None] = []
    with tempfile.TemporaryDirectory() as tmp:
        request, times = Path(tmp) / "request.json", Path(tmp) / "times.txt"
        request.write_text(
            json.dumps(
                {"samples": [official_sample(p) for p in problems], "codes": list(codes), "timeout": timeout}
            )
        )
        while len(seconds) < len(codes):
            times.write_text("")
            subprocess.run(
                [sys.executable, __file__, "--times", str(request), str(times), str(len(seconds))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            seconds += [float(line) for line in times.read_text().split()]
            if len(seconds) < len(codes):
                seconds.append(None)  # this program ended the interpreter
    return seconds


def _times_main(request_path, times_path, first):
    """One line per program, written as each ends, from program `first` on."""
    import time

    sys.set_int_max_str_digits(50000)
    testing_util = _testing_util()
    request = json.loads(Path(request_path).read_text())
    stdout = sys.stdout
    testing_util.reliability_guard()  # once: it cannot be applied twice (os.putenv is gone)
    testing_util.reliability_guard = lambda *args, **kwargs: None
    with open(times_path, "a") as out:
        for sample, code in list(zip(request["samples"], request["codes"]))[int(first) :]:
            started = time.perf_counter()
            try:
                testing_util.run_test(sample, test=code, timeout=request["timeout"])
            except BaseException:  # a program's failure is timed like any other end
                pass
            sys.stdout = stdout
            out.write(f"{time.perf_counter() - started}\n")
            out.flush()


def _run(sample, code, timeout, conn):
    sys.set_int_max_str_digits(50000)
    results, metadata = _testing_util().run_test(sample, test=code, timeout=timeout)
    conn.send([r is True for r in results])


def official_verdict(problem, code: str, timeout: int = 6) -> bool:
    """True when the official grader passes `code` on the problem's tests (as benchkit loaded them)."""
    tests = problem.data["tests"]
    sample = official_sample(problem)
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


if __name__ == "__main__":
    if sys.argv[1] == "--times":
        _times_main(*sys.argv[2:5])
    else:
        _codegen_main(*sys.argv[1:3])
