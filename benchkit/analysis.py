"""Stored runs as tables, and paired comparisons of runs, for the CLI, the notebooks and reports.

Every table starts from `runs_table`, which selects runs; the other tables take its rows.
Seed-format runs (no run_id, no per-sample records) load with run_id "#<index>"; they have
scores, times and difficulty scores, but no per-problem verdicts, so they are never paired.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from benchkit.errors import BenchkitError, StoreError
from benchkit.store import ResultsStore

RUN_COLUMNS = [
    "run_id",
    "label",
    "benchmark",
    "model",
    "quant",
    "gpu_layers",
    "backend",
    "settings",
    "problems",
    "solved",
    "score",
    "ci_low",
    "ci_high",
    "time_s",
    "tokens_s",
    "size_mb",
    "date",
    "status",
    "sweep",
    "cell",
]
SETTINGS = (
    "temperature",
    "top_p",
    "max_tokens",
    "prompt_style",
    "num_samples",
    "parallel",
    "n_ctx",
    "cache_type_k",
    "cache_type_v",
    "flash_attn",
)
DIFFICULTIES = ("easy", "medium", "hard")
BOOTSTRAP_SAMPLES = 10_000


# ------------------------------------------------------------------------------ runs
def runs_table(
    results_dir="results",
    benchmark: str | None = None,
    run_ids=None,
    models=None,
    finished_only: bool = False,
    sweep: str | None = None,
) -> pd.DataFrame:
    """One row per stored run: score with its 95 % Wilson interval over problems, wall time,
    tokens/s and the settings people publish. Optionally only one benchmark, some models, one
    sweep's runs, or the given runs (in the order given); unknown run ids are an error that
    lists the known ones."""
    records = _records(results_dir)
    if run_ids is not None:
        records = _pick(records, run_ids, results_dir)
    rows = [_run_row(run_id, run) for run_id, run in records.items()]
    table = pd.DataFrame(rows, columns=RUN_COLUMNS)
    # tables and figures are keyed by label: the run id's tail, or all of it where tails clash
    tail = table.run_id.str[-6:]
    clash = (table.label + tail).duplicated(keep=False)
    table["label"] = table.label + " [" + tail.where(~clash, table.run_id) + "]"
    if benchmark is not None:
        table = table[table.benchmark == benchmark]
    if models is not None:
        table = table[table.model.isin(list(models))]
    if sweep is not None:
        table = table[table.sweep == sweep]
        if table.empty:
            raise StoreError(f"no runs of sweep {sweep!r}", where=str(ResultsStore(results_dir).file))
    if finished_only:
        table = table[table.status == "complete"]
    return table.reset_index(drop=True)


def _records(results_dir) -> dict[str, dict]:
    runs = ResultsStore(results_dir).runs()
    return {run.get("run_id") or f"#{i}": run for i, run in enumerate(runs)}


def _pick(records: dict[str, dict], run_ids, results_dir) -> dict[str, dict]:
    """The records of `run_ids`, in that order; unknown ids are a StoreError listing the known."""
    missing = [r for r in run_ids if r not in records]
    if missing:
        raise StoreError(
            f"no run with run_id {', '.join(map(repr, missing))}; stored runs: "
            f"{', '.join(records) or 'none'}",
            where=str(ResultsStore(results_dir).file),
        )
    return {r: records[r] for r in run_ids}


def _run_row(run_id: str, run: dict) -> dict:
    config, results = run["config"], run["results"]
    settings = config["settings"]
    status = run["status"]
    problems = results.get("total_problems")
    score = results.get("score") if status == "complete" else None  # partial: not a score
    low, high = score_interval(score, problems)
    quant = config["model"].get("quant") or ""
    tokens, seconds = results.get("tokens"), results.get("generation_seconds")
    sweep = run.get("sweep") or {}
    return {
        "run_id": run_id,
        "label": f"{run.get('model')} {quant}".strip(),
        "benchmark": run.get("benchmark"),
        "model": run.get("model"),
        "quant": quant,
        "gpu_layers": config.get("gpu_layers"),
        "backend": settings.get("backend", ""),
        "settings": settings_text(settings),
        "problems": problems,
        "solved": results.get("total_passed"),
        "score": score,
        "ci_low": low,
        "ci_high": high,
        "time_s": results.get("time_taken"),
        "tokens_s": tokens / seconds if tokens and seconds else None,
        "size_mb": config["model"]["size"] / 2**20 if config["model"].get("size") else None,
        "date": str(run.get("timestamp", ""))[:19],
        "status": status,
        "sweep": sweep.get("name"),
        "cell": sweep.get("cell"),
    }


def settings_text(settings: dict) -> str:
    return ", ".join(f"{key}={settings[key]}" for key in SETTINGS if settings.get(key) is not None)


def score_interval(score: float | None, problems: int | None) -> tuple[float, float]:
    """95 % Wilson interval of a pass@1 score (percent) over `problems` problems: honest at 0 %
    and 100 %, where a bootstrap collapses to a point."""
    if score is None or not problems:
        return (float("nan"), float("nan"))
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(score / 100 * problems, problems, alpha=0.05, method="wilson")
    return (float(low * 100), float(high * 100))


def samples_table(run_id: str, results_dir="results") -> pd.DataFrame:
    """Every per-sample record of a run (empty for seed-format runs, which have none)."""
    return pd.DataFrame(ResultsStore(results_dir).samples(run_id))


def markdown_table(results_dir="results", runs: pd.DataFrame | None = None) -> str:
    """The seed-style table people publish: model, benchmark, quant, settings, score, time."""
    runs = runs_table(results_dir) if runs is None else runs
    lines = ["| model | benchmark | quant | settings | score | time (s) |", "|---|---|---|---|---|---|"]
    for row in runs.itertuples():
        lines.append(
            f"| {row.model} | {row.benchmark} | {row.quant} | {row.settings} | "
            f"{_number(row.score, '.2f')} | {_number(row.time_s, '.0f')} |"
        )
    return "\n".join(lines)


def _number(value, spec: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, spec)


# ------------------------------------------------------------- per difficulty, category, problem
def difficulty_table(runs: pd.DataFrame, results_dir="results") -> pd.DataFrame:
    """pass@1 % per difficulty (LiveCodeBench's easy/medium/hard), one row per run."""
    records = _records(results_dir)
    rows = {
        row.label: {
            name: value.get("score")
            for name, value in records[row.run_id]["results"]["difficulty_scores"].items()
        }
        for row in runs.itertuples()
    }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    ordered = [d for d in DIFFICULTIES if d in frame] + sorted(set(frame) - set(DIFFICULTIES))
    return frame.reindex(index=list(rows), columns=ordered).rename_axis("run")


def category_table(runs: pd.DataFrame, results_dir="results") -> pd.DataFrame:
    """Samples per verdict category (passed, wrong_answer, truncated, …), one row per run."""
    records = _records(results_dir)
    rows = {row.label: records[row.run_id]["results"].get("categories") or {} for row in runs.itertuples()}
    frame = pd.DataFrame.from_dict(rows, orient="index").fillna(0).astype(int)
    frame = frame[frame.sum().sort_values(ascending=False).index] if len(frame.columns) else frame
    return frame.reindex(index=list(rows)).rename_axis("run")


def problem_matrix(runs: pd.DataFrame, results_dir="results") -> pd.DataFrame:
    """Per problem (rows) and run (columns), the fraction of samples that passed; runs without
    per-sample records are left out."""
    store = ResultsStore(results_dir)
    columns = {row.label: _problem_scores(store, row.run_id) for row in runs.itertuples()}
    return pd.DataFrame({k: v for k, v in columns.items() if v is not None}).rename_axis("task_id")


def _finished_scores(store: ResultsStore, run_id: str, run: dict) -> pd.Series:
    """Per-problem scores of a run that can be paired: it has per-sample records, all of them."""
    scores = _problem_scores(store, run_id)
    if scores is None:
        raise BenchkitError(
            f"run {run_id} has no per-sample records (a seed-format run?); a paired comparison needs them",
            where=str(store.samples_file(run_id)),
        )
    expected = (run.get("results") or {}).get("total_problems")
    if expected and len(scores) != expected:
        raise BenchkitError(
            f"run {run_id} is unfinished ({len(scores)} of {expected} problems)",
            where=str(store.samples_file(run_id)),
        )
    return scores


def _problem_scores(store: ResultsStore, run_id: str) -> pd.Series | None:
    samples = store.samples(run_id) if not run_id.startswith("#") else []
    if not samples:
        return None
    frame = pd.DataFrame(samples)
    if not {"task_id", "passed"} <= set(frame.columns) or frame[["task_id", "passed"]].isna().any(axis=None):
        raise StoreError(
            'every sample record needs "task_id" and "passed"', where=str(store.samples_file(run_id))
        )
    return frame.groupby("task_id")["passed"].mean()


# ------------------------------------------------------------------------ paired comparison
@dataclass(frozen=True)
class Comparison:
    run_a: str
    run_b: str
    problems: int
    score_a: float
    score_b: float
    only_a: int  # problems where A does better than B (one sample each: solved by A only)
    only_b: int
    p_value: float
    ci_low: float  # paired bootstrap 95 % interval of score_b - score_a, in points
    ci_high: float
    test: str = "McNemar exact"  # on the flips; "Wilcoxon signed-rank" with several samples

    @property
    def difference(self) -> float:
        return self.score_b - self.score_a

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05 and not (self.ci_low <= 0 <= self.ci_high)

    @property
    def verdict(self) -> str:
        return (
            "significant"
            if self.significant
            else "not significant: the difference is within what chance gives on this many problems"
        )

    def summary(self) -> str:
        return (
            f"{self.run_a} {self.score_a:.2f}% vs {self.run_b} {self.score_b:.2f}% on {self.problems} "
            f"problems: difference {self.difference:+.2f} points (95% CI {self.ci_low:+.2f} to "
            f"{self.ci_high:+.2f}); better on A: {self.only_a} problems, on B: {self.only_b}; "
            f"{self.test} p = {self.p_value:.3g} — {self.verdict}"
        )


def compare(run_a: str, run_b: str, results_dir="results", seed: int = 0) -> Comparison:
    """Pair two runs of the same benchmark problem by problem. One sample per problem: McNemar's
    exact test on the problems solved by one run only; several: Wilcoxon's signed-rank test on
    the per-problem pass rates. Either way a paired bootstrap interval of the difference."""
    records = _pick(_records(results_dir), [run_a, run_b], results_dir)
    store = ResultsStore(results_dir)
    return _compare(run_a, run_b, records, lambda r: _finished_scores(store, r, records[r]), seed)


def _compare(run_a: str, run_b: str, records: dict, scores, seed: int) -> Comparison:
    """`compare` on loaded records; `scores(run_id)` gives a run's per-problem scores."""
    if run_a == run_b:
        raise BenchkitError(f"run {run_a} compared with itself; give two different runs")
    bench_a, bench_b = records[run_a].get("benchmark"), records[run_b].get("benchmark")
    if bench_a != bench_b:
        raise BenchkitError(
            f"runs of different benchmarks cannot be paired ({bench_a} vs {bench_b})",
            where=f"{run_a}, {run_b}",
        )
    a, b = scores(run_a), scores(run_b)
    if set(a.index) != set(b.index):
        raise BenchkitError(
            f"runs cover different problems ({len(set(a.index) - set(b.index))} only in {run_a}, "
            f"{len(set(b.index) - set(a.index))} only in {run_b}); compare runs over the same set",
            where=f"{run_a}, {run_b}",
        )
    b = b[a.index]
    only_a, only_b = int((a > b).sum()), int((b > a).sum())
    diffs = (b.to_numpy(float) - a.to_numpy(float)) * 100
    several = any(records[r]["config"]["settings"].get("num_samples", 1) > 1 for r in (run_a, run_b))
    test, p_value = _paired_test(diffs, only_a, only_b, several)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), (BOOTSTRAP_SAMPLES, len(diffs)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Comparison(
        run_a,
        run_b,
        len(a),
        float(a.mean() * 100),
        float(b.mean() * 100),
        only_a,
        only_b,
        float(p_value),
        float(low),
        float(high),
        test,
    )


def _paired_test(diffs, only_a: int, only_b: int, several: bool) -> tuple[str, float]:
    from scipy.stats import binomtest, wilcoxon

    if not several:
        flips = only_a + only_b
        return "McNemar exact", binomtest(min(only_a, only_b), flips, 0.5).pvalue if flips else 1.0
    if not diffs.any():
        return "Wilcoxon signed-rank", 1.0
    return "Wilcoxon signed-rank", float(wilcoxon(diffs, zero_method="wilcox").pvalue)


def pairwise(runs: pd.DataFrame, results_dir="results") -> pd.DataFrame:
    """`compare` for every pair of the given runs; a pair that cannot be paired gets the reason
    as its verdict instead of statistics."""
    records, store, rows = _records(results_dir), ResultsStore(results_dir), []
    scores = functools.cache(lambda r: _finished_scores(store, r, records[r]))  # read each run once
    for a, b in itertools.combinations(runs.run_id, 2):
        try:
            result = _compare(a, b, records, scores, seed=0)
            rows.append({**asdict(result), "difference": result.difference, "verdict": result.verdict})
        except BenchkitError as exc:
            rows.append({"run_a": a, "run_b": b, "verdict": f"not paired: {exc.message}"})
    columns = [
        "run_a",
        "run_b",
        "problems",
        "score_a",
        "score_b",
        "difference",
        "ci_low",
        "ci_high",
        "only_a",
        "only_b",
        "test",
        "p_value",
        "verdict",
    ]
    return pd.DataFrame(rows, columns=columns)


def against_baseline(runs: pd.DataFrame, baseline: str, results_dir="results") -> pd.DataFrame:
    """Every run paired with one baseline run (its run id, label or sweep cell), with Holm's
    correction of the p-values for the number of comparisons: with 20 cells, some uncorrected
    p < 0.05 are expected by chance alone."""
    from statsmodels.stats.multitest import multipletests

    chosen = runs[(runs.run_id == baseline) | (runs.label == baseline) | (runs.cell == baseline)]
    if chosen.empty:
        raise BenchkitError(
            f"no run or cell {baseline!r} among the runs compared (cells: "
            f"{', '.join(runs.cell.dropna()) or 'none'})",
            where="baseline",
        )
    base = chosen.run_id.iloc[0]
    records, store = _records(results_dir), ResultsStore(results_dir)
    scores = functools.cache(lambda r: _finished_scores(store, r, records[r]))
    rows = []
    for row in runs[runs.run_id != base].itertuples():
        try:
            result = _compare(base, row.run_id, records, scores, seed=0)
            rows.append(
                {
                    "run": row.label,
                    "cell": row.cell,
                    "difference": result.difference,
                    "ci_low": result.ci_low,
                    "ci_high": result.ci_high,
                    "test": result.test,
                    "p_value": result.p_value,
                }
            )
        except BenchkitError as exc:
            rows.append({"run": row.label, "cell": row.cell, "verdict": f"not paired: {exc.message}"})
    tested = [row for row in rows if "p_value" in row]
    if tested:
        reject, adjusted, _, _ = multipletests([row["p_value"] for row in tested], alpha=0.05, method="holm")
        for row, significant, p_holm in zip(tested, reject, adjusted):
            row.update(
                p_holm=float(p_holm),
                verdict="significant (Holm)" if significant else "not significant (Holm)",
            )
    table = pd.DataFrame(
        rows,
        columns=["run", "cell", "difference", "ci_low", "ci_high", "test", "p_value", "p_holm", "verdict"],
    )
    return table.assign(baseline=chosen.label.iloc[0])
