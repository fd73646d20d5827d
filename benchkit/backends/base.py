"""What a generation backend is: one `generate()` from a prompt and explicit sampling settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from benchkit.benchmarks.base import Prompt
from benchkit.config import Sampling


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int
    finish_reason: str  # "stop", "length", or "loop" (stopped by benchkit.runaway)
    seconds: float
    loop: str | None = None  # why a "loop" answer was stopped
    prompt_seconds: float | None = None  # of `seconds`, the prompt's evaluation, where known


class Backend(Protocol):
    def generate(self, prompt: Prompt, sampling: Sampling) -> Generation:
        """Generate one answer. Raises GenerationError for a failure of this prompt alone."""

    def describe(self) -> dict:
        """What a run records about the backend (versions, devices)."""

    def close(self) -> None:
        """Free the model (and any GPU memory) now."""
