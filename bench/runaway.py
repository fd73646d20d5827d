"""The loop rule (benchkit.runaway) against the same run without it: time, tokens, verdicts.

    # both runs, same build and settings, one after the other (full greedy HumanEval by default)
    .venv/bin/python bench/runaway.py [--limit N] [--threads 1] [--max-tokens 512]
    .venv/bin/python bench/runaway.py --benchmark lcb --problems-file lcb/problems.jsonl \
        --start-date 2024-08-01 --end-date 2024-09-30      # a window of 43 problems
    .venv/bin/python bench/runaway.py --temperature 0.8 --num-samples 5 --limit 20   # pass@k
    # the "without" side from a stored run (its settings are used for the "with" side; a
    # partial run is compared on the problems it finished)
    .venv/bin/python bench/runaway.py --without RUN_ID --results-dir DIR
    # offline, no generation: cut a stored run's answers where the rule would have stopped them
    # (greedy decoding makes exactly these texts) and grade them again
    .venv/bin/python bench/runaway.py --replay DIR/samples/RUN_ID.jsonl [--benchmark human_eval]

Prints, for both sides: wall time, generation time, tokens; their ratios (with / without);
pass@k (with a bootstrap 95 % interval of the run without the rule when there are several
samples); and the problems whose verdict differs (must be none).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchkit import grading  # noqa: E402
from benchkit.benchmarks import get_benchmark, time_limit  # noqa: E402
from benchkit.config import RunConfig, flag, validate_config  # noqa: E402
from benchkit.errors import ConfigError  # noqa: E402
from benchkit.runaway import find_loop  # noqa: E402
from benchkit.runner import _config_of, run  # noqa: E402
from benchkit.sandbox import Sandbox  # noqa: E402
from benchkit.scoring import pass_at_k_percent  # noqa: E402
from benchkit.store import ResultsStore  # noqa: E402


def main() -> None:
    args = _parser().parse_args()
    if args.replay:
        return replay(args.replay, args)
    results = Path(args.results_dir or tempfile.mkdtemp(prefix="bench-runaway-"))
    if args.without:
        stored = ResultsStore(results)
        without = stored.get(args.without)
        samples = stored.samples(args.without)
        config = _config_of(without, RunConfig(results_dir=results))
        done = {r["task_id"] for r in samples}
        order = [p.task_id for p in get_benchmark(config.benchmark, config).problems()]
        finished = next((i for i, t in enumerate(order) if t not in done), len(order))
        config = config.model_copy(
            update={
                "limit": min(config.limit or finished, finished),
                "n_threads": args.threads or config.n_threads,
            }
        )
        without = _side(without, [r for r in samples if r["task_id"] in order[:finished]])
    else:
        config = _config(args, results)
        without = _run(config.model_copy(update={"stop_runaway": False}))
    with_rule = _run(config.model_copy(update={"stop_runaway": True}))
    report(
        without,
        with_rule,
        f"{config.benchmark}, {config.limit or 'all'} problems, "
        f"{config.num_samples} sample(s), temperature {config.temperature}, max_tokens {config.max_tokens}",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--benchmark", default="human_eval")
    parser.add_argument("--problems-file", nargs="+")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--start-date", help="LiveCodeBench window: first contest date (YYYY-MM-DD)")
    parser.add_argument("--end-date", help="LiveCodeBench window: last contest date (YYYY-MM-DD)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--prompt-style", default="completion")
    parser.add_argument("--model")
    parser.add_argument("--backend", default="llama_cpp")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--results-dir", help="keep both runs here (default: a new temporary directory)")
    parser.add_argument(
        "--without", metavar="RUN_ID", help="a stored run (in --results-dir) as the side without the rule"
    )
    parser.add_argument("--replay", type=Path, metavar="SAMPLES_JSONL")
    return parser


def _config(args, results: Path) -> RunConfig:
    """The run's settings from the arguments; a bad one ends the script naming its flag."""
    values = dict(
        benchmark=args.benchmark,
        problems_file=args.problems_file,
        start_date=args.start_date,
        end_date=args.end_date,
        limit=args.limit,
        n_threads=args.threads,
        max_tokens=args.max_tokens,
        prompt_style=args.prompt_style,
        model=args.model,
        backend=args.backend,
        temperature=args.temperature,
        num_samples=args.num_samples,
        results_dir=results,
    )
    try:
        return validate_config(values, "command line", label=flag)
    except ConfigError as exc:
        sys.exit(f"runaway.py: error: {exc}")


def _run(config: RunConfig) -> dict:
    record = run(config, progress=True)
    return _side(record, ResultsStore(config.results_dir).samples(record["run_id"]))


def _side(record: dict, samples: list[dict]) -> dict:
    wall = record["results"].get("time_taken", float("nan"))  # a run still going has none yet
    return {
        "run_id": record["run_id"],
        "wall": wall,
        "samples": samples,
        "gen": sum(r["gen_seconds"] for r in samples),
        "tokens": sum(r["tokens"] for r in samples),
    }


def report(without: dict, with_rule: dict, title: str) -> None:
    print(f"\n{title}")
    a, b = without, with_rule
    print(f"{'':16} {'without rule':>14} {'with rule':>14} {'ratio':>8}")
    for key, label in (("wall", "wall s"), ("gen", "generation s"), ("tokens", "tokens")):
        print(f"{label:16} {a[key]:14.1f} {b[key]:14.1f} {b[key] / max(a[key], 1e-9):7.3f}x")
    print(f"{'runs':16} {a['run_id']:>14} {b['run_id']:>14}")
    compare_verdicts(a["samples"], b["samples"])


def compare_verdicts(without: list[dict], with_rule: list[dict]) -> int:
    """Per problem: solved by at least one sample; plus pass@k of both and, with several
    samples, a bootstrap interval of the run without the rule. Returns the flips."""
    solved_a, solved_b = _solved(without), _solved(with_rule)
    common = sorted(set(solved_a) & set(solved_b))
    flips = [t for t in common if solved_a[t] != solved_b[t]]
    same_sample = _by_sample(without), _by_sample(with_rule)
    sample_flips = [
        k for k in same_sample[0] if k in same_sample[1] and same_sample[0][k] != same_sample[1][k]
    ]
    stopped = sum(r.get("finish_reason") == "loop" for r in with_rule)
    print(f"problems compared {len(common)}; answers stopped as loops {stopped}/{len(with_rule)}")
    print(f"per-problem verdict flips: {len(flips)} {flips}")
    print(f"per-sample verdict flips: {len(sample_flips)}")
    for name, rows in (("without", without), ("with", with_rule)):
        print(f"pass@k {name:8}: {_pass_k(rows, common)}")
    if len({r["sample"] for r in without}) > 1:
        low, high = _bootstrap(without, common)
        inside = low <= _pass_k(with_rule, common)["pass@1"] <= high
        print(
            f"bootstrap 95% interval of pass@1 without the rule: [{low:.2f}, {high:.2f}]; "
            f"with the rule inside: {inside}"
        )
    return len(flips)


def _solved(rows: list[dict]) -> dict[str, bool]:
    solved: dict[str, bool] = {}
    for r in rows:
        solved[r["task_id"]] = solved.get(r["task_id"], False) or bool(r["passed"])
    return solved


def _by_sample(rows: list[dict]) -> dict:
    return {(r["task_id"], r["sample"]): bool(r["passed"]) for r in rows}


def _counts(rows: list[dict], tasks: list[str]) -> list[tuple[int, int]]:
    by_task = {t: [0, 0] for t in tasks}
    for r in rows:
        if r["task_id"] in by_task:
            by_task[r["task_id"]][0] += 1
            by_task[r["task_id"]][1] += bool(r["passed"])
    return [tuple(c) for c in by_task.values()]


def _pass_k(rows: list[dict], tasks: list[str]) -> dict:
    return {k: round(v, 2) for k, v in pass_at_k_percent(_counts(rows, tasks)).items()}


def _bootstrap(rows: list[dict], tasks: list[str], rounds: int = 2000) -> tuple[float, float]:
    rate = np.array([c / n for n, c in _counts(rows, tasks)])
    rng = np.random.default_rng(0)
    means = [100 * rate[rng.integers(0, len(rate), len(rate))].mean() for _ in range(rounds)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def replay(samples_path: Path, args) -> None:
    """Grade a stored run's answers cut where the rule would have stopped them."""
    rows = [json.loads(line) for line in samples_path.read_text().splitlines() if line.strip()]
    config = RunConfig(benchmark=args.benchmark, problems_file=args.problems_file)
    benchmark = get_benchmark(config.benchmark, config)
    problems = {p.task_id: p for p in benchmark.problems()}
    cut_rows = []
    for row in rows:
        loop = find_loop(row["output"])
        cut = dict(
            row,
            output=row["output"][: loop.end] if loop else row["output"],
            finish_reason="loop" if loop else row["finish_reason"],
        )
        cut["completion"] = benchmark.completion(problems[row["task_id"]], cut["output"], args.prompt_style)
        cut_rows.append(cut)
    with Sandbox() as sandbox:
        futures = [
            grading.submit(
                sandbox,
                benchmark,
                None
                if r["completion"] is None
                else benchmark.job(
                    problems[r["task_id"]], r["completion"], time_limit(config), config.memory_mb
                ),
            )
            for r in cut_rows
        ]
        for row, future in zip(cut_rows, futures):
            row.update(grading.verdict(future.result(), row["finish_reason"], benchmark.stored_details))
    kept = sum(len(r["output"]) for r in cut_rows) / max(sum(len(r["output"]) for r in rows), 1)
    print(f"replay of {samples_path}: {len(rows)} answers; text kept {kept:.3f} of the characters")
    compare_verdicts(rows, cut_rows)
    changed = [
        (r["task_id"], a["category"], r["category"])
        for a, r in zip(rows, cut_rows)
        if a["category"] != r["category"]
    ]
    print(f"categories changed ({len(changed)}): " + ", ".join(f"{t} {a}->{b}" for t, a, b in changed[:40]))


if __name__ == "__main__":
    main()
