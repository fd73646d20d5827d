"""What a benchmark is: a dataset of problems, a prompt for each, and a program that checks an answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from benchkit.sandbox import Job

Prompt = str | list[dict[str, str]]  # completion text, or chat messages


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    difficulty: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class Benchmark(Protocol):
    name: str
    default_timeout: float  # seconds per program (per test where tests run one by one)

    def problems(self) -> list[Problem]:
        """Every problem, in the benchmark's order."""

    def prompt(self, problem: Problem, style: str) -> Prompt:
        """What the model sees: the text to continue (completion) or chat messages (chat)."""

    def stop(self, style: str) -> list[str]:
        """Default stop sequences for a prompt style."""

    def completion(self, problem: Problem, output: str, style: str) -> str | None:
        """Turn the model's raw output into the benchmark's answer; None when it holds no code."""

    def job(self, problem: Problem, completion: str, timeout: float, memory_mb: int) -> Job:
        """The sandboxed program that passes only if `completion` is right."""

    def describe(self) -> dict:
        """What a run records about the data: files, their sha256, what was selected."""
