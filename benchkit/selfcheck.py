"""Does grading work on this machine? Canonical solutions must pass, known-bad programs must
fail, and the machine must be fast enough for the configured time limit. Run by
`benchkit selfcheck` and at the start of every run."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

from benchkit.sandbox import Job, Sandbox

REFERENCE_LOOP = "total = sum(i * i for i in range(1_000_000))"
REFERENCE_SECONDS = 0.05  # that loop on one core of the 2-core CI machine (measured 0.04 s)
KNOWN_BAD = {
    "wrong answer": ("def f():\n    return 1\nassert f() == 2", "failed"),
    "sys.exit(0) before the tests": ("import sys\nsys.exit(0)\nassert False", "failed"),
    "os._exit(0) before the tests": ("import os\nos._exit(0)\nassert False", "crashed"),
    "endless loop": ("while True:\n    pass", "timeout"),
    "memory bomb": ("x = bytearray(64 * 1024**3)", "memory"),
    "network access": ("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)", "failed"),
}


@dataclass
class SelfCheck:
    isolation: str
    canonical_passed: int = 0
    canonical_total: int = 0
    slowest_canonical_s: float = 0.0
    reference_loop_s: float = 0.0
    benchmark_checked: list[str] = field(default_factory=list)  # the benchmark's own programs, by name
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_config(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def selfcheck(sandbox: Sandbox, timeout: float = 3.0, memory_mb: int = 2048, benchmarks=()) -> SelfCheck:
    """The sandbox's checks, and the programs with which each of `benchmarks` (instances or
    classes) proves its own harness."""
    from benchkit.benchmarks.human_eval import HumanEval, program

    report = SelfCheck(isolation=sandbox.isolation)
    tasks = [p.data for p in HumanEval().problems()]
    canonical = [sandbox.submit(Job(program(t, t["canonical_solution"]), timeout, memory_mb)) for t in tasks]
    bad = {
        name: sandbox.submit(Job(src, min(timeout, 0.5), min(memory_mb, 512)))
        for name, (src, _) in KNOWN_BAD.items()
    }
    reference = sandbox.submit(Job(REFERENCE_LOOP, 30.0, memory_mb))
    own = submit_benchmark_programs(sandbox, benchmarks, timeout, memory_mb)
    outcomes = [f.result() for f in canonical]
    report.canonical_total = len(outcomes)
    report.canonical_passed = sum(o.passed for o in outcomes)
    report.slowest_canonical_s = max((o.seconds for o in outcomes), default=0.0)
    report.problems += [
        f"canonical solution of {t['task_id']} did not pass: {o.message}"
        for t, o in zip(tasks, outcomes)
        if not o.passed
    ]
    for name, future in bad.items():
        outcome, expected = future.result(), KNOWN_BAD[name][1]
        if outcome.status != expected:
            report.problems.append(f"known-bad program '{name}' gave {outcome.status}, expected {expected}")
    report.benchmark_checked, problems = benchmark_program_verdicts(own)
    report.problems += problems
    report.reference_loop_s = reference.result().seconds
    _calibrate(report, timeout)
    for message in report.warnings:
        warnings.warn(f"benchkit selfcheck: {message}", RuntimeWarning, stacklevel=2)
    return report


def submit_benchmark_programs(sandbox: Sandbox, benchmarks, timeout: float, memory_mb: int) -> list:
    """The programs with which each benchmark proves its own harness, submitted: (name, future,
    expected status)."""
    return [
        (f"{b.name}: {name}", sandbox.submit(job), expected)
        for b in benchmarks
        for name, job, expected in b.selfcheck_programs(min(timeout, 2.0), memory_mb)
    ]


def benchmark_program_verdicts(submitted: list) -> tuple[list[str], list[str]]:
    """The names checked, and a problem for each program graded otherwise than expected."""
    checked, problems = [], []
    for name, future, expected in submitted:
        outcome = future.result()
        checked.append(name)
        if outcome.status != expected:
            problems.append(
                f"self-check program '{name}' gave {outcome.status} ({outcome.message}), expected {expected}"
            )
    return checked, problems


def _calibrate(report: SelfCheck, timeout: float) -> None:
    slowdown = report.reference_loop_s / REFERENCE_SECONDS
    if report.slowest_canonical_s > timeout / 3:
        report.warnings.append(
            f"the slowest canonical solution took {report.slowest_canonical_s:.2f} s of the "
            f"{timeout:g} s limit; right answers may time out here: raise --timeout"
        )
    if slowdown > 3:
        report.warnings.append(
            f"this machine runs Python {slowdown:.1f}x slower than a typical desktop core "
            f"({report.reference_loop_s:.2f} s for a {REFERENCE_SECONDS} s reference loop); "
            f"consider --timeout {timeout * slowdown / 2:.0f}"
        )
