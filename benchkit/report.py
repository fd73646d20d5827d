"""What a comparison of runs shows, and `benchkit report`: the same as one self-contained HTML file.

`sections` is the one list of tables, statistics and figures; the compare notebook displays
it, `write_report` writes it with plotly.js inlined, so the file opens offline, anywhere.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

import pandas as pd

from benchkit import analysis, figures
from benchkit.errors import BenchkitError, ConfigError, StoreError
from benchkit.store import ResultsStore, atomic_write

RUN_VIEW = [
    "label",
    "run_id",
    "model",
    "quant",
    "backend",
    "gpu_layers",
    "settings",
    "problems",
    "solved",
    "score",
    "ci_low",
    "ci_high",
    "time_s",
    "status",
]


SWEEP_VIEW = [
    "cell",
    "model",
    "quant",
    "settings",
    "problems",
    "solved",
    "score",
    "ci_low",
    "ci_high",
    "time_s",
    "tokens_s",
    "size_mb",
]


def select(
    results_dir="results", benchmark=None, run_ids=None, models=None, sweep=None
) -> dict[str, pd.DataFrame]:
    """The runs to compare, grouped by benchmark (only runs of one benchmark can be paired).
    Without run ids, only finished runs; with a sweep, only its runs."""
    runs = analysis.runs_table(
        results_dir, benchmark, run_ids or None, models or None, finished_only=not run_ids, sweep=sweep
    )
    if runs.empty:
        wanted = f" of benchmark {benchmark!r}" if benchmark else ""
        raise BenchkitError(f"no stored runs{wanted} to compare", where=str(ResultsStore(results_dir).file))
    runs = runs.fillna({"benchmark": "(no benchmark)"})
    return {name: group.reset_index(drop=True) for name, group in runs.groupby("benchmark", sort=True)}


def sections(
    runs: pd.DataFrame, results_dir="results", baseline: str | None = None
) -> list[tuple[str, object]]:
    """(title, content) pairs; content is a DataFrame, a plotly figure or a line of text. Runs
    of one sweep also get the sweep's table and figures, and every cell against a baseline
    cell (default: the first) with Holm's correction."""
    shown = [
        ("Runs", runs[RUN_VIEW].set_index("label").round(2)),
        ("Seed-style table", analysis.markdown_table(results_dir, runs)),
    ]
    if runs.sweep.notna().all() and runs.sweep.nunique() == 1 and len(runs) > 1:
        shown += _sweep_sections(runs, results_dir, baseline or runs.cell.iloc[0])
    pairs = analysis.pairwise(runs, results_dir)
    if len(pairs):
        pairs = pairs.round(2).assign(p_value=pairs.p_value.map(_p))
        shown.append(("Paired comparisons (95% CI: paired bootstrap, in points)", pairs))
    shown += [
        ("Score per run", figures.score_figure(runs)),
        ("Score against wall time", figures.time_figure(runs)),
    ]
    for setting in ("quant", "gpu_layers", "backend"):
        if runs[setting].astype(str).nunique() > 1:
            shown.append((f"Score by {setting}", figures.setting_figure(runs, setting)))
    difficulty = analysis.difficulty_table(runs, results_dir)
    if not difficulty.dropna(how="all").empty:
        shown += [
            ("Per difficulty (pass@1 %)", difficulty.round(2)),
            ("Per difficulty", figures.difficulty_figure(difficulty)),
        ]
    categories = analysis.category_table(runs, results_dir)
    if not categories.empty:
        shown += [
            ("Per failure category (samples)", categories),
            ("Failure categories", figures.category_figure(categories)),
        ]
    matrix = analysis.problem_matrix(runs, results_dir)
    if (matrix > 0).any(axis=None):
        shown.append(("Per-problem verdicts", figures.problem_heatmap(matrix)))
    elif not matrix.empty:
        shown.append(("Per-problem verdicts", f"No run solved any of the {len(matrix)} problems."))
    return shown


def _sweep_sections(runs: pd.DataFrame, results_dir, baseline: str) -> list[tuple[str, object]]:
    versus = analysis.against_baseline(runs, baseline, results_dir)
    versus = versus.round(2).assign(p_value=versus.p_value.map(_p), p_holm=versus.p_holm.map(_p))
    return [
        (f"Sweep {runs.sweep.iloc[0]}", runs[SWEEP_VIEW].set_index("cell").round(2)),
        (
            f"Every cell against {versus.baseline.iloc[0] if len(versus) else baseline} "
            "(paired; p-values corrected for the number of comparisons by Holm's method)",
            versus.drop(columns="baseline"),
        ),
        ("Score by model and quant", figures.model_quant_figure(runs)),
    ] + ([("Score against model size", figures.size_figure(runs))] if runs.size_mb.notna().any() else [])


def _p(p) -> str:
    return "" if pd.isna(p) else f"{p:.3g}"


def write_report(
    results_dir="results",
    output: str | Path | None = None,
    benchmark=None,
    run_ids=None,
    models=None,
    sweep=None,
    baseline=None,
) -> Path:
    """One HTML file with every benchmark's comparison; written atomically."""
    from plotly.offline import get_plotlyjs

    output = _output_path(results_dir, output)
    groups = select(results_dir, benchmark, run_ids, models, sweep)
    body = [
        f"<h1>benchkit comparison</h1><p class='meta'>{html.escape(str(ResultsStore(results_dir).file))}"
        f" — generated {datetime.now():%Y-%m-%d %H:%M}</p>"
    ]
    for name, runs in groups.items():
        body.append(f"<h2>{html.escape(str(name))}: {len(runs)} run(s)</h2>")
        body += [_section_html(title, content) for title, content in sections(runs, results_dir, baseline)]
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>benchkit comparison</title>"
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head>"
        f"<body>{''.join(body)}</body></html>"
    )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(output, page)
    except OSError as exc:
        raise StoreError(f"cannot write the report: {exc.strerror}", where=str(output)) from None
    return output


def _output_path(results_dir, output) -> Path:
    """Where the report goes: an .html file, never one of the stored results."""
    if output is None:
        return Path(results_dir) / "reports" / f"compare-{datetime.now():%Y%m%d-%H%M%S}.html"
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise ConfigError("the report is an HTML file: give a path ending in .html", where=str(output))
    return output


def _section_html(title: str, content) -> str:
    heading = f"<h3>{html.escape(title)}</h3>"
    if isinstance(content, pd.DataFrame):
        return heading + content.to_html(classes="table", na_rep="", border=0)
    if isinstance(content, str):
        return heading + f"<pre>{html.escape(content)}</pre>"
    return heading + content.to_html(
        full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True}
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
.meta { color: #666; }
table.table { border-collapse: collapse; font-size: 13px; margin: .5em 0 1.5em; }
table.table th, table.table td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
table.table th { background: #f4f4f4; }
pre { background: #f8f8f8; padding: .8em; overflow-x: auto; font-size: 12px; }
"""
