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
    finish_reason: str  # "stop" or "length"
    seconds: float


class Backend(Protocol):
    def generate(self, prompt: Prompt, sampling: Sampling) -> Generation:
        """Generate one answer. Raises GenerationError for a failure of this prompt alone."""

    def describe(self) -> dict:
        """What a run records about the backend (versions, devices)."""

    def close(self) -> None:
        """Free the model (and any GPU memory) now."""
