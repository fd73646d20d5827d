"""The run record: what `benchmark_results.json` keeps about one run, typed and versioned.

Every key of the seed's format stays where the seed has it: `timestamp`, `benchmark`, `model`,
`config.path`, `config.gpu_layers` and `results.{score, time_taken, total_passed,
total_problems, difficulty_scores, failed_tasks}`. Beside them, `config` groups what a run
knows by where it comes from.

Versions (`schema_version`; older records have none and are told apart by their keys):
  0  the seed's: no run_id; `difficulty_scores` is {name: {passed, total}}
  1  benchkit 0.1: run_id and status; settings, model facts (`model_*`), machine, backend and
     sandbox facts flat in `config`; `difficulty_scores` is {name: percent}
  2  `config` grouped into settings, model, machine, backend, sandbox, data;
     `difficulty_scores` is {name: {passed, total, score}}
`migrate` brings any of them to the current version on read; the file itself is only
rewritten run by run, when a run is saved.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchkit.errors import StoreError

SCHEMA_VERSION = 2
STATUSES = ("queued", "running", "complete", "interrupted", "failed")  # queued: a sweep's, handed out
MACHINE_KEYS = ("benchkit", "python", "os", "host", "cpu", "cpu_count", "gpu", "pid")
SANDBOX_KEYS = ("isolation", "time_limit_s", "time_limit_clock", "selfcheck")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ModelFacts(_Open):
    path: str | None = None
    name: str | None = None
    sha256: str | None = None
    size: int | None = None
    quant: str | None = None
    architecture: str | None = None
    context_length: int | None = None
    has_chat_template: bool | None = None


class Config(_Open):
    path: str | None = None  # the seed's: the model file (or endpoint#model)
    gpu_layers: int | None = None  # the seed's
    settings: dict[str, Any] = Field(default_factory=dict)  # RunConfig, as given
    model: ModelFacts = Field(default_factory=ModelFacts)
    machine: dict[str, Any] = Field(default_factory=dict)
    backend: dict[str, Any] = Field(default_factory=dict)
    sandbox: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)


class DifficultyScore(_Open):
    passed: int | None = None  # problems solved (the seed's)
    total: int | None = None  # problems (the seed's)
    score: float | None = None  # pass@1, percent


class Results(_Open):
    score: float | None = None
    time_taken: float | None = None
    total_passed: int | None = None
    total_problems: int | None = None
    difficulty_scores: dict[str, DifficultyScore] = Field(default_factory=dict)
    failed_tasks: list[str] = Field(default_factory=list)


class SweepRef(BaseModel):
    name: str
    cell: str


class RunRecord(_Open):
    schema_version: int = SCHEMA_VERSION
    run_id: str | None = None
    timestamp: str | None = None
    benchmark: str
    model: str
    status: Literal[STATUSES] = "complete"
    config: Config = Field(default_factory=Config)
    results: Results = Field(default_factory=Results)
    sweep: SweepRef | None = None  # the sweep and cell this run belongs to


def validated(run: dict, where: str) -> dict:
    """`run` checked against the current schema, as plain JSON types: keys it does not have stay
    absent, except `config`'s groups, which every record has, so readers need no fallbacks."""
    try:
        record = RunRecord.model_validate(run)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise StoreError(
            f"run {run.get('run_id') or run.get('timestamp')!r}: {key}: {first['msg']}", where=where
        ) from None
    return record.model_dump(mode="json", exclude_unset=True) | {
        "config": record.config.model_dump(mode="json"),
        "status": record.status,
    }


def version_of(run: dict) -> int:
    if "schema_version" in run:
        return run["schema_version"]
    return 1 if "run_id" in run else 0


def migrate(run: dict, where: str) -> dict:
    """Any stored version of a run, as the current version (the input is not changed)."""
    version = version_of(run)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StoreError(
            f"run {run.get('run_id')!r} was written by a newer benchkit (schema_version {version}; "
            f"this one reads up to {SCHEMA_VERSION}): upgrade benchkit. The file was left untouched",
            where=where,
        )
    if version == 0:
        run = _from_seed(run)
    elif version == 1:
        run = _from_v1(run)
    return validated({**run, "schema_version": SCHEMA_VERSION}, where)


def _from_seed(run: dict) -> dict:
    results = dict(run.get("results") or {})
    results["difficulty_scores"] = {
        name: {**value, "score": 100.0 * value["passed"] / value["total"]}
        if isinstance(value, dict) and value.get("total")
        else value
        for name, value in (results.get("difficulty_scores") or {}).items()
    }
    return {**run, "status": run.get("status", "complete"), "results": results}


def _from_v1(run: dict) -> dict:
    from benchkit.config import RunConfig

    flat = dict(run.get("config") or {})
    model = {
        key.removeprefix("model_"): flat.pop(key)
        for key in list(flat)
        if key.startswith("model_") and key != "model_name"
    }
    settings = {key: flat.pop(key) for key in list(flat) if key in RunConfig.model_fields}
    path = flat.pop("path", None)
    settings["model"] = path if model.get("size") else None  # None: the embedded model, or remote
    settings.setdefault("stop_runaway", False)  # 0.1 had no loop rule: answers ran to the cap
    config = {
        "path": path,
        "gpu_layers": settings.get("gpu_layers"),
        "settings": settings,
        "model": {**model, "path": path},
        "machine": {key: flat.pop(key) for key in MACHINE_KEYS if key in flat},
        "sandbox": {key: flat.pop(key) for key in SANDBOX_KEYS if key in flat},
        "data": flat.pop("data", {}),
    }
    config["backend"] = flat  # what is left: what the backend described
    results = dict(run.get("results") or {})
    results["difficulty_scores"] = {
        name: value if isinstance(value, dict) else {"score": value}
        for name, value in (results.get("difficulty_scores") or {}).items()
    }
    return {**run, "config": config, "results": results}
