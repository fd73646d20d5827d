"""Plotly figures of stored runs, drawn from the tables in `benchkit.analysis`.

The run notebooks and every comparison (the compare notebook, `benchkit report`) draw with
these, so a figure looks the same wherever it is shown.
"""

from __future__ import annotations

import pandas as pd

HOVER = ["run_id", "model", "quant", "settings", "problems", "solved"]


def _with_error_bars(runs: pd.DataFrame, **columns) -> pd.DataFrame:
    """The runs with their 95 % interval as plotly's error bar lengths (and any other columns)."""
    return runs.assign(err_plus=runs.ci_high - runs.score, err_minus=runs.score - runs.ci_low, **columns)


def score_figure(runs: pd.DataFrame):
    """pass@1 per run with its 95 % interval: overlapping bars are not a ranking."""
    import plotly.express as px

    frame = _with_error_bars(runs)
    fig = px.bar(
        frame,
        x="label",
        y="score",
        error_y="err_plus",
        error_y_minus="err_minus",
        color="model",
        hover_data=HOVER + ["ci_low", "ci_high"],
        labels={"label": "run", "score": "pass@1 %"},
        title="pass@1 with 95% interval (Wilson, over problems)",
    )
    return fig.update_layout(xaxis_tickangle=-20)


def time_figure(runs: pd.DataFrame):
    """Score against wall time: the runs worth publishing sit top left."""
    import plotly.express as px

    frame = _with_error_bars(runs)
    return px.scatter(
        frame,
        x="time_s",
        y="score",
        error_y="err_plus",
        error_y_minus="err_minus",
        color="model",
        symbol="quant",
        hover_data=HOVER + ["label"],
        labels={"time_s": "wall time (s)", "score": "pass@1 %"},
        title="pass@1 against wall time",
    )


def setting_figure(runs: pd.DataFrame, setting: str):
    """Score against one setting (quant, gpu_layers, backend, …), one colour per model."""
    import plotly.express as px

    frame = _with_error_bars(runs, **{setting: runs[setting].astype(str)})
    return px.scatter(
        frame.sort_values(setting),
        x=setting,
        y="score",
        color="model",
        error_y="err_plus",
        error_y_minus="err_minus",
        hover_data=HOVER + ["label"],
        labels={"score": "pass@1 %"},
        title=f"pass@1 by {setting}",
    )


def difficulty_figure(table: pd.DataFrame):
    """Grouped bars of `analysis.difficulty_table`: pass@1 per difficulty and run."""
    import plotly.express as px

    frame = table.reset_index().melt(id_vars="run", var_name="difficulty", value_name="pass@1 %")
    return px.bar(
        frame,
        x="difficulty",
        y="pass@1 %",
        color="run",
        barmode="group",
        range_y=[0, 100],
        title="pass@1 by difficulty",
    )


def category_figure(table: pd.DataFrame):
    """Stacked bars of `analysis.category_table`: how each run's samples ended."""
    import plotly.express as px

    frame = table.reset_index().melt(id_vars="run", var_name="category", value_name="samples")
    return px.bar(frame, x="run", y="samples", color="category", title="Verdicts by failure category")


def problem_heatmap(matrix: pd.DataFrame):
    """Per-problem pass/fail across runs (`analysis.problem_matrix`), for the problems at least one
    run solved: a row that differs between runs is a flip that a paired comparison counts."""
    import plotly.express as px

    solved = matrix[(matrix > 0).any(axis=1)]
    left_out = len(matrix) - len(solved)
    height = max(300, min(2400, 18 * len(solved) + 200))
    fig = px.imshow(
        solved,
        zmin=0,
        zmax=1,
        aspect="auto",
        color_continuous_scale="Greens",
        labels={"x": "run", "y": "problem", "color": "passed"},
        title=f"Per-problem verdicts (1 = every sample passed); the {left_out} problems "
        "no run solved are left out",
    )
    return fig.update_layout(height=height)


def model_quant_figure(runs: pd.DataFrame):
    """A sweep's score per model and quant, one bar per setting of the grid (the cell's name
    after its benchmark and model), side by side."""
    import plotly.express as px

    cell = runs.cell.fillna(runs.label)
    frame = _with_error_bars(
        runs,
        cell=cell,
        model_quant=runs.model + " " + runs.quant.astype(str),
        setting=cell.str.split("/").str[2:].str.join("/").replace("", "(one setting)"),
    )
    return px.bar(
        frame,
        x="model_quant",
        y="score",
        color="setting",
        barmode="group",
        error_y="err_plus",
        error_y_minus="err_minus",
        hover_data=HOVER + ["cell"],
        labels={"score": "pass@1 %", "model_quant": "model and quant"},
        title="pass@1 by model and quant",
    )


def size_figure(runs: pd.DataFrame):
    """Score against the model file's size: what each megabyte buys."""
    import plotly.express as px

    frame = _with_error_bars(runs[runs.size_mb.notna()])
    return px.scatter(
        frame,
        x="size_mb",
        y="score",
        color="model",
        symbol="quant",
        error_y="err_plus",
        error_y_minus="err_minus",
        hover_data=HOVER + ["label"],
        labels={"size_mb": "model file (MiB)", "score": "pass@1 %"},
        title="pass@1 against model size",
    )
