"""Run settings: one flat pydantic model shared by the CLI, YAML parameter files and notebooks."""

from __future__ import annotations

import os
from pathlib import Path
from datetime import date
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from benchkit.errors import ConfigError


class Sampling(BaseModel):
    """Every sampling setting, always sent explicitly: backends disagree on defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 disables top-k")
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repeat_penalty: float = Field(1.0, gt=0.0)
    max_tokens: int = Field(512, ge=1)
    seed: int = 1234
    stop: list[str] = Field(default_factory=list)


class RunConfig(BaseModel):
    """What a run is: model, benchmark, sampling, limits. Everything here is stored with the run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    benchmark: str = "human_eval"
    model: Path | None = Field(None, description="GGUF file; None = the embedded Gemma 3 270M")
    backend: str = "llama_cpp"
    gpu_layers: int = Field(-1, ge=-1, description="layers offloaded to the GPU, -1 = all")
    n_ctx: int = Field(4096, ge=256)
    n_threads: int | None = Field(None, ge=1)
    prompt_style: Literal["completion", "chat"] = "completion"
    num_samples: int = Field(1, ge=1)
    limit: int | None = Field(None, ge=1, description="only the first N problems")
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repeat_penalty: float = Field(1.0, gt=0.0)
    max_tokens: int = Field(512, ge=1)
    seed: int = 1234
    stop: list[str] | None = Field(None, description="None = the benchmark's stop sequences")
    timeout: float | None = Field(None, gt=0.0, description="seconds per program (LiveCodeBench: "
                                  "per test); None = the benchmark's own (3 s HumanEval, 6 s LCB)")
    memory_mb: int = Field(2048, ge=64, description="address-space limit per program")
    grade_workers: int | None = Field(None, ge=1)
    results_dir: Path = Path("results")
    stop_runaway: bool = Field(True, description="stop an answer caught in a loop (the same line or "
                               "block again and again, or endless blank/comment lines) while it is "
                               "generated, and grade it as it stands (benchkit.runaway); false = "
                               "every answer runs to a stop sequence or max_tokens, as other harnesses do")
    # servers: a managed llama-server, or any OpenAI-compatible endpoint
    parallel: int = Field(1, ge=1, description="concurrent requests = server slots (-np)")
    base_url: str | None = Field(None, description="openai backend: the endpoint")
    model_name: str | None = Field(None, description="openai backend: the model to ask for")
    request_timeout: float = Field(600.0, gt=0.0)
    server_binary: Path | None = Field(None, description="llama-server to use (default: $PATH, or build)")
    server_port: int | None = Field(None, ge=1, le=65535, description="default: a free port")
    server_start_timeout: float = Field(120.0, gt=0.0)
    # LiveCodeBench data and filters
    problems_file: list[Path] | None = Field(None, description="official test*.jsonl files or their directory")
    start_date: date | None = None
    end_date: date | None = None
    release: Literal["v1", "v2", "v3", "v4", "v5", "v6",
                     "release_v1", "release_v2", "release_v3", "release_v4", "release_v5",
                     "release_v6"] | None = None
    platform: Literal["atcoder", "leetcode", "codeforces"] | None = None
    difficulty: Literal["easy", "medium", "hard"] | None = None
    lcb_corrected: bool = Field(False, description="fix the official grader's known false negatives")

    @field_validator("problems_file", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        return [value] if isinstance(value, (str, Path)) else value

    def sampling(self, sample_index: int, default_stop: list[str]) -> Sampling:
        """The sampling settings of one sample; each sample gets its own reproducible seed."""
        return Sampling(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repeat_penalty=self.repeat_penalty,
            max_tokens=self.max_tokens,
            seed=self.seed + sample_index,
            stop=default_stop if self.stop is None else self.stop,
        )

    def threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    def identity(self) -> dict[str, Any]:
        """The settings that decide what is generated: runs with equal identity can resume each other."""
        return self.model_dump(
            mode="json", exclude={"results_dir", "grade_workers", "n_threads", "request_timeout",
                                  "server_binary", "server_port", "server_start_timeout"}
        )


def validate_config(values: dict[str, Any], source: str) -> RunConfig:
    """Build a RunConfig, turning pydantic's errors into one ConfigError naming source and key."""
    try:
        return RunConfig(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc), where=source) from None
    except TypeError as exc:  # non-string keys
        raise ConfigError(str(exc), where=source) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(RunConfig.model_fields)
            lines.append(f"unknown key '{key}' (known keys: {known})")
        else:
            got = err.get("input")
            lines.append(f"key '{key}': {err['msg']} (got {got!r})")
    return "; ".join(lines)


def load_parameters(path: str | Path) -> RunConfig:
    """Read a papermill parameters YAML (flat keys, as the notebooks take them)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read parameters file: {exc.strerror}", where=str(path)) from None
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", where=where) from None
    if not isinstance(values, dict):
        raise ConfigError(
            f"expected a mapping of parameter names to values, got {type(values).__name__}",
            where=str(path),
        )
    return validate_config(values, str(path))
