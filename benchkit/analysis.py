"""Stored runs as tables, for the CLI and the notebooks."""

from __future__ import annotations

import pandas as pd

from benchkit.store import ResultsStore

RUN_COLUMNS = ["run_id", "benchmark", "model", "quant", "gpu_layers", "score", "time_s", "date", "status"]


def runs_table(results_dir="results") -> pd.DataFrame:
    """One row per stored run; runs in the seed's older format (no run_id, no status) included."""
    rows = []
    for index, run in enumerate(ResultsStore(results_dir).runs()):
        config, results = run.get("config") or {}, run.get("results") or {}
        rows.append({
            "run_id": run.get("run_id", f"#{index}"),
            "benchmark": run.get("benchmark"),
            "model": run.get("model"),
            "quant": config.get("model_quant", ""),
            "gpu_layers": config.get("gpu_layers"),
            "score": results.get("score"),
            "time_s": results.get("time_taken"),
            "date": str(run.get("timestamp", ""))[:19],
            "status": run.get("status", "complete"),
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)
