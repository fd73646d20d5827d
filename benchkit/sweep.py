"""Sweeps: many models, quants and settings in one file, run as one idempotent unit of work.

A sweep file (YAML) names benchmarks, models and a grid of settings; its cells are their
product, less what `exclude` removes. Each cell is one run, stored with `sweep: {name, cell}`.
Running a sweep again skips complete cells, resumes partial ones from their journals and
starts only new ones (inspect_ai's eval-set). Every setting is a `RunConfig` field and is
checked before anything runs.

    name: gemma-quants
    benchmarks:
      human_eval: {limit: 20}
      lcb: {problems_file: ../shared/data/lcb/problems.jsonl, start_date: 2025-02-01}
    models: [embedded, ~/models/*.gguf, {backend: openai, base_url: "http://127.0.0.1:8080"}]
    grid: {max_tokens: [256, 512], temperature: [0.0]}
    fixed: {n_ctx: 4096}
    exclude: [{model: embedded, max_tokens: 512}]
    resources: {GPU: 1}      # dask executors: what each cell takes from a worker
"""

from __future__ import annotations

import glob
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchkit.config import RunConfig, benchmark_fields, validate_config
from benchkit.errors import BenchkitError, ConfigError, ModelFileError
from benchkit.store import ResultsStore

NOT_SWEPT = {"benchmark", "model", "results_dir"}  # given by the file's structure, or the command


class SweepFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="names the sweep's runs")
    benchmarks: dict[str, dict[str, Any] | None] = Field(min_length=1)
    models: list[str | dict[str, Any]] = Field(min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    resources: dict[str, float] = Field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    name: str  # benchmark/model[/key=value,...]: stable across runs of the sweep
    config: RunConfig
    labels: dict  # benchmark, model and the grid's values: what `exclude` and tables match on


@dataclass(frozen=True)
class Sweep:
    name: str
    file: Path
    cells: list[Cell]
    resources: dict[str, float]


def load_sweep(path: str | Path, results_dir: str | Path = "results") -> Sweep:
    """Read and check a sweep file and every one of its cells; errors name file, key and cell."""
    path = Path(path)
    spec = _parse(path)
    where = str(path)
    for section, keys in [
        ("grid", spec.grid),
        ("fixed", spec.fixed),
        *[(f"benchmarks.{b}", s or {}) for b, s in spec.benchmarks.items()],
    ]:
        for key in keys:
            if key in NOT_SWEPT or key not in RunConfig.model_fields:
                raise ConfigError(_unknown(key), where=f"{where}: {section}.{key}")
    for key, values in spec.grid.items():
        if not values:
            raise ConfigError("a grid entry needs at least one value", where=f"{where}: grid.{key}")
    models = [m for i, entry in enumerate(spec.models) for m in _models(entry, f"{where}: models[{i}]")]
    cells = []
    for benchmark, model, values in itertools.product(
        spec.benchmarks, models, itertools.product(*spec.grid.values())
    ):
        grid = dict(zip(spec.grid, values))
        labels = {"benchmark": benchmark, "model": model["label"], **grid}
        if any(all(labels.get(k) == v for k, v in rule.items()) for rule in spec.exclude):
            continue
        name = "/".join(
            [benchmark, model["label"], *([",".join(f"{k}={v}" for k, v in grid.items())] if grid else [])]
        )
        settings = {
            **spec.fixed,
            **(spec.benchmarks[benchmark] or {}),
            **model["settings"],
            **grid,
            "benchmark": benchmark,
            "results_dir": results_dir,
        }
        cells.append(Cell(name, validate_config(settings, f"{where}: cell {name}"), labels))
    if not cells:
        raise ConfigError("every cell is excluded: nothing to run", where=f"{where}: exclude")
    _check_benchmarks(cells, where)
    return Sweep(spec.name, path, cells, spec.resources)


def _parse(path: Path) -> SweepFile:
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read sweep file: {exc.strerror}", where=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", where=where) from None
    if not isinstance(values, dict):
        raise ConfigError("a sweep file is a mapping (name, benchmarks, models, grid, …)", where=str(path))
    try:
        return SweepFile(**values)
    except ValidationError as exc:
        err = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo explains the rest
        key = ".".join(str(p) for p in err["loc"])
        message = {
            "extra_forbidden": "unknown key (known: name, benchmarks, models, grid, fixed, "
            "exclude, resources)",
            "missing": "required key is missing",
        }.get(err["type"], f"{err['msg']} (got {err.get('input')!r})")
        raise ConfigError(message, where=f"{path}: {key}") from None


def _unknown(key: str) -> str:
    if key in NOT_SWEPT:
        return f"'{key}' is set by the sweep's structure (benchmarks, models) or the command line"
    return f"unknown setting '{key}' (known: {', '.join(sorted(set(RunConfig.model_fields) - NOT_SWEPT))})"


def _models(entry, where: str) -> list[dict]:
    """A models entry as [{label, settings}]: `embedded`, a GGUF path or glob, or a mapping of
    settings (a `path` plus per-model settings, or an endpoint)."""
    from benchkit.model_file import inspect_model

    settings = dict(entry) if isinstance(entry, dict) else {}
    target = entry if isinstance(entry, str) else settings.pop("path", None)
    for key in settings:
        if key not in RunConfig.model_fields or key in NOT_SWEPT:
            raise ConfigError(_unknown(key), where=f"{where}.{key}")
    if target is None:  # an endpoint
        label = (
            settings.get("model_name")
            or settings.get("base_url")
            or (Path(settings["script"]).stem if settings.get("script") else settings.get("backend", "model"))
        )
        return [{"label": str(label), "settings": settings}]
    if target == "embedded":
        return [{"label": "embedded", "settings": settings}]
    paths = (
        sorted(glob.glob(str(Path(target).expanduser())))
        if glob.has_magic(target)
        else [str(Path(target).expanduser())]
    )
    if not paths:
        raise ConfigError(f"no file matches {target!r}", where=where)
    found = []
    for file in paths:
        try:
            inspect_model(file)
        except ModelFileError as exc:
            raise ConfigError(exc.message, where=f"{where}: {file}") from None
        found.append({"label": Path(file).stem, "settings": {**settings, "model": file}})
    return found


def _check_benchmarks(cells: list[Cell], where: str) -> None:
    """Unknown benchmarks and data that cannot be loaded are errors before anything runs."""
    from benchkit.benchmarks import get_benchmark

    checked = set()
    for cell in cells:
        key = cell.config.model_dump_json(include={"benchmark", "problems_file", *benchmark_fields()})
        if key not in checked:
            checked.add(key)
            try:
                get_benchmark(cell.config.benchmark, cell.config).problems()
            except BenchkitError as exc:
                raise ConfigError(exc.message, where=f"{where}: cell {cell.name}: {exc.where}") from None


# ------------------------------------------------------------------------------ state
@dataclass(frozen=True)
class CellState:
    cell: Cell
    state: str  # done | partial | new
    run_id: str | None  # the run that a partial cell resumes, or that completed it
    samples_done: int
    samples_expected: int
    record: dict | None = None  # the stored record of that run


def cell_states(sweep: Sweep, store: ResultsStore) -> list[CellState]:
    """Each cell's progress: the runs stored for it with the same settings (a cell whose
    settings changed in the file is new again)."""
    from benchkit.benchmarks import get_benchmark
    from benchkit.runner import identity, identity_of_record

    runs = [r for r in store.runs() if r.get("sweep") and r["sweep"]["name"] == sweep.name]
    states = []
    for cell in sweep.cells:
        wanted = identity(cell.config)
        mine = [r for r in runs if r["sweep"]["cell"] == cell.name and identity_of_record(r) == wanted]
        problems = get_benchmark(cell.config.benchmark, cell.config).problems()[: cell.config.limit]
        expected = len(problems) * cell.config.num_samples
        complete = [r for r in mine if r["status"] == "complete"]
        if complete:
            states.append(CellState(cell, "done", complete[-1]["run_id"], expected, expected, complete[-1]))
        elif mine:
            done = len({(r["task_id"], r["sample"]) for r in store.samples(mine[-1]["run_id"])})
            states.append(CellState(cell, "partial", mine[-1]["run_id"], done, expected, mine[-1]))
        else:
            states.append(CellState(cell, "new", None, 0, expected))
    return states


def seconds_per_sample(store: ResultsStore) -> dict[tuple[str, str], float]:
    """(model sha256 or path, benchmark) → median wall seconds per sample of its complete runs."""
    import statistics

    seen: dict[tuple[str, str], list[float]] = {}
    for run in store.runs():
        model, results = run["config"]["model"], run["results"]
        done = results.get("samples_done") or results.get("total_samples")
        if run["status"] == "complete" and done and results.get("time_taken"):
            key = (model.get("sha256") or model.get("path") or "", run["benchmark"])
            seen.setdefault(key, []).append(results["time_taken"] / done)
    return {key: statistics.median(values) for key, values in seen.items()}


def plan_table(sweep: Sweep, store: ResultsStore) -> str:
    """`benchkit sweep --dry-run`: every cell, its state and the work left, with an estimate
    of time from stored runs of the same model and benchmark where there are any."""
    from benchkit.runner import model_info

    rates = seconds_per_sample(store)
    rows, total_left, total_s, unknown = [], 0, 0.0, 0
    for state in cell_states(sweep, store):
        left = state.samples_expected - state.samples_done
        info = model_info(state.cell.config)
        rate = rates.get((info.sha256 or info.path, state.cell.config.benchmark))
        shown = {"done": "done", "new": "new"}.get(
            state.state, f"partial {state.samples_done}/{state.samples_expected}"
        )
        estimate = "" if not left else (f"~{_duration(left * rate)}" if rate else "no stored run")
        total_left, total_s, unknown = (
            total_left + left,
            total_s + left * (rate or 0),
            unknown + bool(left and not rate),
        )
        rows.append((state.cell.name, shown, str(left), estimate))
    widths = [
        max(len(r[i]) for r in rows + [("cell", "state", "samples left", "estimate")]) for i in range(4)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(("cell", "state", "samples left", "estimate"), widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    lines.append(
        f"{len(rows)} cells, {sum(r[1] == 'done' for r in rows)} done; {total_left} samples left"
        + (f", ~{_duration(total_s)}" if total_s else "")
        + (f" (+ {unknown} cell(s) without a stored run to estimate from)" if unknown else "")
    )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
