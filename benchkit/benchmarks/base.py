"""What a benchmark is: a dataset of problems, a prompt for each, and a program that checks an answer."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from benchkit.sandbox import Job, Sandbox
from benchkit.settings import Settings

Prompt = str | list[dict[str, str]]  # completion text, or chat messages


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    difficulty: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class Benchmark:
    """A benchmark is a dataset, a prompt and a check, in one module with its sandbox harness
    (a function of the worker's `HARNESSES`, named by the jobs it makes) and its own options
    (`settings`). Subclasses give the data, the prompts and the jobs; the check's defaults here
    fit a benchmark whose program passes by running to its end (HumanEval's "exec" harness);
    LiveCodeBench overrides them."""

    name: str
    default_timeout: float  # seconds per program (per test where tests run one by one)
    time_limit_clock = "wall-clock"  # how its harness measures those seconds (stored with a run)
    settings: type[Settings] | None = None  # its own options: RunConfig fields, CLI flags
    stored_details: tuple[str, ...] = ()  # the keys of an outcome's details a sample row stores

    def __init__(self, config=None):
        self.config = config

    def problems(self) -> list[Problem]:
        """Every problem, in the benchmark's order."""
        raise NotImplementedError

    def prompt(self, problem: Problem, style: str) -> Prompt:
        """What the model sees: the text to continue (completion) or chat messages (chat)."""
        raise NotImplementedError

    def stop(self, style: str) -> list[str]:
        """Default stop sequences for a prompt style."""
        raise NotImplementedError

    def completion(self, problem: Problem, output: str, style: str) -> str | None:
        """Turn the model's raw output into the benchmark's answer; None when it holds no code."""
        raise NotImplementedError

    def job(self, problem: Problem, completion: str, timeout: float, memory_mb: int) -> Job:
        """The sandboxed program that passes only if `completion` is right: a Job naming its
        harness, with that harness's payload."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What a run records about the data: files, their sha256, what was selected."""
        raise NotImplementedError

    def grade(self, sandbox: Sandbox, job: Job) -> Future:
        """Run the check: a Future[Outcome]."""
        return sandbox.submit(job)

    @classmethod
    def summarize(cls, records: list[dict]) -> dict:
        """What this benchmark adds to a run's `results`, from its per-sample records."""
        return {}

    @classmethod
    def selfcheck_programs(cls, timeout: float, memory_mb: int) -> list[tuple[str, Job, str]]:
        """(name, job, expected outcome status) that prove this benchmark's harness grades right
        on this machine; run with the sandbox's self-check before a run scores anything."""
        return []
