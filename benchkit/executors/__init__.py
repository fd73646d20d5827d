"""Where a sweep's cells run: one after another in this process (`local`), or as Dask tasks on
a running cluster (`dask`, `--scheduler`) or on a cluster of local processes (`dask-local`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchkit.registry import resolve

EXECUTORS = {
    "local": "benchkit.executors.local:run_sweep",
    "dask": "benchkit.executors.dask:run_sweep",
    "dask-local": "benchkit.executors.dask:run_sweep_on_local_cluster",
}


@dataclass(frozen=True)
class Options:
    results_dir: Path
    progress: bool = True
    scheduler: str | None = None  # dask: the scheduler's address
    workers: int = 2  # dask-local: worker processes
    notebook: bool = False  # local: each cell through its benchmark's notebook (papermill)
    pool: object = None  # local: a GradingPool to share with other sweeps (one kernel, many sweeps)


def executor(name: str):
    """`run_sweep(sweep, options) -> list of records` of the executor registered as `name`."""
    return resolve(EXECUTORS, name, "executor")
