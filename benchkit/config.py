"""Run settings, each defined once: type, default, help, CLI group, and whether it is part of the
run's identity. The CLI flags, notebook parameters, parameter files and the stored record are all
derived from `RunConfig`'s fields: the shared settings declared here, each benchmark's own
declared in its module (`Benchmark.settings`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator

from benchkit.benchmarks import BENCHMARKS, benchmark_settings
from benchkit.errors import ConfigError
from benchkit.settings import Settings, setting

KV_TYPES = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]  # llama.cpp's


class SamplingSettings(Settings):
    """Every sampling setting, always sent explicitly: backends disagree on defaults."""

    temperature: float = setting(0.0, "0 = greedy", group="sampling", ge=0.0)
    top_p: float = setting(1.0, "nucleus sampling; 1 = off", group="sampling", gt=0.0, le=1.0)
    top_k: int = setting(0, "0 = off", group="sampling", ge=0)
    min_p: float = setting(0.0, "0 = off", group="sampling", ge=0.0, le=1.0)
    repeat_penalty: float = setting(1.0, "1 = off", group="sampling", gt=0.0)
    max_tokens: int = setting(512, "the cap on tokens per answer", group="sampling", ge=1)
    seed: int = setting(1234, "sample i of a problem uses seed + i", group="sampling")


class Sampling(SamplingSettings):
    """The sampling settings of one sample: its own seed, the stop sequences resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stop: list[str] = Field(default_factory=list)


class CoreSettings(SamplingSettings):
    """The settings every benchmark shares (a benchmark's own are in its module)."""

    # the benchmark
    benchmark: str = setting("human_eval", " or ".join(BENCHMARKS), group="benchmark")
    prompt_style: Literal["completion", "chat"] = setting(
        "completion",
        "completion (base models) or chat (instruct models: the GGUF's chat template)",
        group="benchmark",
    )
    num_samples: int = setting(1, "samples per problem, for pass@k", group="benchmark", ge=1)
    limit: int | None = setting(None, "only the first N problems", group="benchmark", ge=1)
    # the model
    model: Path | None = setting(None, "GGUF file (default: the embedded Gemma 3 270M Q4_K_M)", group="model")
    gpu_layers: int = setting(-1, "layers offloaded to the GPU; -1 = all", group="model", ge=-1)
    n_ctx: int = setting(4096, "context size in tokens", group="model", flag="--ctx", ge=256)
    n_threads: int | None = setting(
        None,
        "CPU threads for generation (default: all cores)",
        group="model",
        identity=False,
        flag="--threads",
        ge=1,
    )
    cache_type_k: KV_TYPES = setting("f16", "KV cache type of keys", group="model")
    cache_type_v: KV_TYPES = setting(
        "f16", "KV cache type of values (quantised needs --flash-attn)", group="model"
    )
    flash_attn: bool = setting(
        False, "flash attention (llama.cpp's -fa on; off by default, as llama-cpp-python)", group="model"
    )
    # sampling (the fields of SamplingSettings) and stop sequences
    stop: list[str] | None = setting(None, "stop sequences (default: the benchmark's own)", group="sampling")
    stop_runaway: bool = setting(
        True,
        "stop an answer caught in a loop (the same line or block again and again, or endless "
        "blank/comment lines) while it is generated, and grade it as it stands (benchkit.runaway); "
        "--no-stop-runaway: every answer runs to a stop sequence or max_tokens, as other harnesses do",
        group="sampling",
    )
    # grading
    timeout: float | None = setting(
        None,
        "seconds per program (LiveCodeBench: per test); default: the benchmark's own "
        "(3 s HumanEval, 6 s LiveCodeBench)",
        group="grading",
        gt=0.0,
    )
    memory_mb: int = setting(2048, "memory limit per program (MiB)", group="grading", ge=64)
    grade_workers: int | None = setting(
        None, "sandbox workers (default: all cores)", group="grading", identity=False, flag="--workers", ge=1
    )
    # backends: in process, a managed llama-server, or any OpenAI-compatible endpoint
    backend: str = setting(
        "llama_cpp",
        "llama_cpp (in process), llama_server (managed), openai "
        "(any endpoint) or scripted (replies from --script)",
        group="backend",
    )
    parallel: int = setting(
        1,
        "concurrent requests = llama-server slots (-np); 1 for reproducible greedy runs",
        group="backend",
        ge=1,
    )
    base_url: str | None = setting(
        None, "openai backend: the endpoint, e.g. http://127.0.0.1:8080", group="backend"
    )
    model_name: str | None = setting(None, "openai backend: the model to ask for", group="backend")
    script: Path | None = setting(
        None,
        "scripted backend: JSONL of replies by task_id and sample, e.g. a stored samples file to regrade",
        group="backend",
    )
    request_timeout: float = setting(600.0, "seconds per request", group="backend", identity=False, gt=0.0)
    server_binary: Path | None = setting(
        None,
        "llama_server backend: the llama-server to run (default: $PATH, else built once)",
        group="backend",
        identity=False,
    )
    server_port: int | None = setting(
        None,
        "llama_server backend: port (default: a free one)",
        group="backend",
        identity=False,
        ge=1,
        le=65535,
    )
    server_start_timeout: float = setting(
        120.0, "llama_server backend: seconds to wait for /health", group="backend", identity=False, gt=0.0
    )
    # the benchmark's data (its own filters follow, from its module)
    problems_file: list[Path] | None = setting(
        None,
        "the benchmark's problem files (default: HumanEval's own; LiveCodeBench: the official "
        "test*.jsonl files, or their directory)",
        group="data",
    )

    @field_validator("problems_file", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        return [value] if isinstance(value, (str, Path)) else value


class OutputSettings(Settings):
    # where results go
    results_dir: Path = setting(
        Path("results"), "where benchmark_results.json lives", group="output", identity=False
    )


class RunConfig(OutputSettings, *reversed(benchmark_settings()), CoreSettings):
    """What a run is: benchmark, model, sampling, limits, each benchmark's own options (declared
    in its module: `Benchmark.settings`). Everything here is stored with the run. pydantic takes
    the fields of the last base first, so they come in the order of `benchkit run --help` and of
    stored settings: the shared ones, each benchmark's (in registry order), where results go."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def sampling(self, sample_index: int, default_stop: list[str]) -> Sampling:
        """The sampling settings of one sample; each sample gets its own reproducible seed."""
        values = {name: getattr(self, name) for name in SamplingSettings.model_fields}
        return Sampling(
            **values | {"seed": self.seed + sample_index},
            stop=default_stop if self.stop is None else self.stop,
        )

    def threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    def identity(self) -> dict[str, Any]:
        """The settings that decide what is generated: runs with equal identity can resume each other."""
        return self.model_dump(mode="json", include=set(fields(identity=True)))

    def settings(self) -> dict[str, Any]:
        """Every setting as stored with a run (JSON types)."""
        return self.model_dump(mode="json")


def fields(*, group: str | None = None, identity: bool | None = None) -> list[str]:
    """RunConfig's field names, optionally only one group's, or only (non-)identity ones."""
    return [
        name
        for name, info in RunConfig.model_fields.items()
        if (group is None or info.json_schema_extra["group"] == group)
        and (identity is None or info.json_schema_extra["identity"] == identity)
    ]


def benchmark_fields() -> list[str]:
    """The RunConfig fields that the benchmarks declare in their own modules."""
    return [name for settings in benchmark_settings() for name in settings.model_fields]


def flag(name: str) -> str:
    """The CLI flag of a RunConfig field."""
    return RunConfig.model_fields[name].json_schema_extra.get("flag") or "--" + name.replace("_", "-")


def validate_config(values: dict[str, Any], source: str, label=lambda key: f"key '{key}'") -> RunConfig:
    """Build a RunConfig, turning pydantic's errors into one ConfigError naming source and key
    (`label` names a key as the user wrote it: a YAML key, a notebook parameter, a CLI flag)."""
    try:
        return RunConfig(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, label), where=source) from None
    except TypeError as exc:  # non-string keys
        raise ConfigError(str(exc), where=source) from None


def _describe(exc: ValidationError, label) -> str:
    lines = []
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else "(top level)"
        place = ".".join(str(p) for p in err["loc"][1:])
        name = label(key) if key in RunConfig.model_fields else f"key '{key}'"
        name += f" [{place}]" if place else ""
        if err["type"] == "extra_forbidden":
            known = ", ".join(RunConfig.model_fields)
            lines.append(f"unknown {name} (known keys: {known})")
        else:
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
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
