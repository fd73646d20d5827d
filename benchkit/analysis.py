"""Stored runs as tables, and paired comparisons of two runs, for the CLI and the notebooks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchkit.errors import BenchkitError
from benchkit.store import ResultsStore

RUN_COLUMNS = ["run_id", "benchmark", "model", "quant", "gpu_layers", "score", "time_s", "date", "status"]
BOOTSTRAP_SAMPLES = 10_000


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


def samples_table(run_id: str, results_dir="results") -> pd.DataFrame:
    """Every per-sample record of a run (empty for seed-format runs, which have none)."""
    return pd.DataFrame(ResultsStore(results_dir).samples(run_id))


def markdown_table(results_dir="results") -> str:
    """The seed-style table people publish: model, quant, settings, score, time."""
    lines = ["| model | benchmark | quant | settings | score | time (s) |", "|---|---|---|---|---|---|"]
    for run in ResultsStore(results_dir).runs():
        cfg, res = run.get("config") or {}, run.get("results") or {}
        settings = ", ".join(f"{k}={cfg[k]}" for k in ("temperature", "max_tokens", "gpu_layers",
                                                      "prompt_style") if k in cfg)
        lines.append(f"| {run.get('model')} | {run.get('benchmark')} | {cfg.get('model_quant', '')} | "
                     f"{settings} | {res.get('score', 0):.2f} | {res.get('time_taken', 0):.0f} |")
    return "\n".join(lines)


def problem_scores(run_id: str, results_dir="results") -> pd.Series:
    """Per problem, the fraction of samples that passed (0 or 1 for one sample)."""
    store = ResultsStore(results_dir)
    run = store.get(run_id)
    samples = store.samples(run_id)
    if not samples:
        raise BenchkitError(f"run {run_id} has no per-sample records (a seed-format run?); "
                            "a paired comparison needs them", where=str(store.samples_file(run_id)))
    frame = pd.DataFrame(samples)
    scores = frame.groupby("task_id")["passed"].mean()
    expected = run.get("results", {}).get("total_problems")
    if expected and len(scores) != expected:
        raise BenchkitError(f"run {run_id} is unfinished ({len(scores)} of {expected} problems)")
    return scores


@dataclass(frozen=True)
class Comparison:
    run_a: str
    run_b: str
    problems: int
    score_a: float
    score_b: float
    only_a: int  # problems A solves and B does not (one sample each: pass/fail flips)
    only_b: int
    p_value: float  # McNemar's exact test on the flips
    ci_low: float  # paired bootstrap 95 % interval of score_b - score_a, in points
    ci_high: float

    @property
    def difference(self) -> float:
        return self.score_b - self.score_a

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05 and not (self.ci_low <= 0 <= self.ci_high)

    def summary(self) -> str:
        verdict = ("significant" if self.significant else
                   "not significant: the difference is within what chance gives on this many problems")
        return (f"{self.run_a} {self.score_a:.2f}% vs {self.run_b} {self.score_b:.2f}% on {self.problems} "
                f"problems: difference {self.difference:+.2f} points (95% CI {self.ci_low:+.2f} to "
                f"{self.ci_high:+.2f}); solved only by A: {self.only_a}, only by B: {self.only_b}; "
                f"McNemar exact p = {self.p_value:.3g} — {verdict}")


def compare(run_a: str, run_b: str, results_dir="results", seed: int = 0) -> Comparison:
    """Pair two runs of the same benchmark problem by problem."""
    from scipy.stats import binomtest

    store = ResultsStore(results_dir)
    bench_a, bench_b = store.get(run_a).get("benchmark"), store.get(run_b).get("benchmark")
    if bench_a != bench_b:
        raise BenchkitError(f"runs of different benchmarks cannot be paired ({bench_a} vs {bench_b})")
    a, b = problem_scores(run_a, results_dir), problem_scores(run_b, results_dir)
    if set(a.index) != set(b.index):
        raise BenchkitError(
            f"runs cover different problems ({len(set(a.index) - set(b.index))} only in {run_a}, "
            f"{len(set(b.index) - set(a.index))} only in {run_b}); compare runs over the same set")
    b = b[a.index]
    only_a, only_b = int(((a >= 0.5) & (b < 0.5)).sum()), int(((b >= 0.5) & (a < 0.5)).sum())
    flips = only_a + only_b
    p_value = binomtest(min(only_a, only_b), flips, 0.5).pvalue if flips else 1.0
    diffs = (b.to_numpy(float) - a.to_numpy(float)) * 100
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), (BOOTSTRAP_SAMPLES, len(diffs)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Comparison(run_a, run_b, len(a), float(a.mean() * 100), float(b.mean() * 100),
                      only_a, only_b, float(p_value), float(low), float(high))
