"""Notebook side of benchkit: run from papermill parameters, show a run, execute a report.

The notebooks in `notebooks/` only call these functions, so they stay thin.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from benchkit.config import RunConfig, validate_config
from benchkit import errors
from benchkit.errors import BenchkitError, ConfigError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
EXTRA_PARAMETERS = {"resume"}
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def run_from_parameters(namespace: dict, progress: bool = True) -> dict:
    """Validate the notebook's parameters (as papermill injected them) and run the benchmark."""
    import plotly.io as pio

    from benchkit.runner import run

    pio.renderers.default = "plotly_mimetype+notebook"  # plotly.js inline: the report works offline
    params = {k: v for k, v in namespace.items()
              if not k.startswith("_") and k not in _KERNEL_NAMES and not callable(v)
              and type(v).__name__ != "module"}
    unknown = sorted(set(params) - set(RunConfig.model_fields) - EXTRA_PARAMETERS)
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}; known: {', '.join(RunConfig.model_fields)}",
                          where="papermill parameters")
    resume = params.pop("resume", None)
    config = validate_config(params, "papermill parameters")
    return run(config, resume=resume, progress=progress)


def summary(record: dict) -> pd.DataFrame:
    res, cfg = record["results"], record["config"]
    rows = {
        "run": record["run_id"], "status": record["status"], "model": record["model"],
        "quant": cfg.get("model_quant"), "prompt style": cfg.get("prompt_style"),
        "temperature": cfg.get("temperature"), "max tokens": cfg.get("max_tokens"),
        "problems": res["total_problems"], "solved": res["total_passed"],
        "score (pass@1 %)": res["score"],
        **{f"{k} %": v for k, v in res.get("pass_at_k", {}).items() if k != "pass@1"},
        "wall time (s)": res["time_taken"], "generation time (s)": res.get("generation_seconds"),
        "tokens": res.get("tokens"), "isolation": cfg.get("isolation"),
    }
    return pd.DataFrame({"value": rows}).rename_axis("")


def category_figure(record: dict):
    import plotly.express as px

    counts = record["results"].get("categories", {})
    frame = pd.DataFrame({"category": list(counts), "samples": list(counts.values())})
    frame = frame.sort_values("samples", ascending=False)
    return px.bar(frame, x="category", y="samples", color="category",
                  title=f"Verdicts by category — {record['model']} on {record['benchmark']}")


def difficulty_figure(record: dict):
    import plotly.express as px

    scores = record["results"].get("difficulty_scores", {})
    order = [d for d in ("easy", "medium", "hard") if d in scores]
    frame = pd.DataFrame({"difficulty": order, "pass@1 %": [scores[d] for d in order]})
    return px.bar(frame, x="difficulty", y="pass@1 %", color="difficulty", range_y=[0, 100],
                  title=f"pass@1 by difficulty — {record['model']} on {record['benchmark']}")


def data_note(record: dict) -> str:
    """Whether the score used the private tests: public-only scores are not leaderboard scores."""
    data = record["config"].get("data", {})
    if data.get("public_tests_only"):
        return ("**Public tests only** — these problem files carry no private tests, so this score "
                "is higher than the official one and not comparable with the leaderboard.")
    return f"Graded on public and private tests ({data.get('private_tests', 0)} problems with private tests)."


def failing_tasks(record: dict, results_dir: str | Path = "results") -> pd.DataFrame:
    from benchkit.store import ResultsStore

    rows = [r for r in ResultsStore(results_dir).samples(record["run_id"]) if not r["passed"]]
    frame = pd.DataFrame(rows, columns=["task_id", "sample", "category", "result", "tokens"])
    return frame.sort_values(["task_id", "sample"]).reset_index(drop=True)


def execute(config: RunConfig, resume=None) -> Path:
    """Run the benchmark's notebook under papermill; the executed copy is the report."""
    import papermill

    source = NOTEBOOK_DIR / f"{config.benchmark}.ipynb"
    if not source.exists():
        raise ConfigError(f"no notebook for benchmark {config.benchmark!r}", where=str(source))
    reports = Path(config.results_dir) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    output = reports / f"{config.benchmark}-{datetime.now():%Y%m%d-%H%M%S}.ipynb"
    parameters = config.model_dump(mode="json") | {"resume": resume}
    try:
        papermill.execute_notebook(str(source), str(output), parameters=parameters,
                                   cwd=str(Path.cwd()), progress_bar=False)
    except papermill.PapermillExecutionError as exc:
        kind = getattr(errors, exc.ename, None)
        kind = kind if isinstance(kind, type) and issubclass(kind, BenchkitError) else BenchkitError
        raise kind(f"{exc.ename}: {exc.evalue}", where=f"{output} (cell {exc.exec_count})") from None
    return output
