"""Where a sweep's cells run: one after another here (`local`), or on a Dask cluster."""

from __future__ import annotations

from benchkit.registry import resolve

EXECUTORS = {
    "local": "benchkit.executors.local:run_sweep",
}


def executor(name: str):
    return resolve(EXECUTORS, name, "executor")
