"""benchkit grade vs the official LiveCodeBench grader at its own entry point, same programs, one run.

    .venv/bin/python bench/lcb_grade_speed.py [--programs 400] [--variants-every 5] [--processes N]
        [--rounds 1]

Programs: real model-written solutions from ../shared/data/lcb (stdin and LeetCode problems)
plus broken variants of one in `--variants-every` (no output, an exception, a syntax error,
sys.exit before printing, a wrong constant). Tests: the problems' tests as benchkit loads them.
The official side is `livecodebench.evaluation.codegen_metrics(samples, generations,
num_process_evaluate=<cores>, timeout=6)` from PyPI nvidia-livecodebench, called in a fresh
interpreter (tests/official_lcb.py); benchkit's is `benchkit grade --benchmark lcb`. Both are
timed as whole commands; prints both, the ratio and the verdict agreement (every disagreement),
for every program and again for the programs that end in under a second.

The floor under any grader is what the programs themselves cost: the official `run_test` on
each program, one after another in one interpreter, with no process per program
(tests/official_lcb.py's `official_run_seconds`). A program that runs to its time limit costs
that limit whoever grades it: the official grader gives it a core of its own for 6 s a test,
and benchkit gives it 6 s of its own time (waits for a CPU not counted). So no grader that
keeps the official verdicts ends before max(longest program, floor / cores), and the best
ratio it can reach is printed beside the measured one. The programs that end in under a
second show each grader's own cost.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "lcb"

from benchkit.benchmarks import get_benchmark  # noqa: E402
from benchkit.config import RunConfig  # noqa: E402
from tests.official_lcb import codegen_verdicts, official_run_seconds  # noqa: E402

VARIANTS = [
    lambda code: "pass\n",
    lambda code: "raise ValueError('nope')\n" + code,
    lambda code: code + "\n)\n",
    lambda code: "import sys\nsys.exit(0)\n" + code,
    lambda code: "print(0)\n",
]


def programs(count: int, variants_every: int, seed: int) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in (DATA / "solutions.jsonl").read_text().splitlines()]
    random.Random(seed).shuffle(rows)
    chosen = [(r["question_id"], r["code"]) for r in rows[:count]]
    broken = [
        (qid, variant(code))
        for i, (qid, code) in enumerate(chosen)
        if variants_every and i % variants_every == 0
        for variant in VARIANTS[i % 2 :: 2]
    ]
    return chosen + broken


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs", type=int, default=400)
    parser.add_argument("--variants-every", type=int, default=5)
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=1, help="time both sides this many times")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    pairs = programs(args.programs, args.variants_every, args.seed)
    problems = {
        p.task_id: p
        for p in get_benchmark(
            "lcb", RunConfig(benchmark="lcb", problems_file=DATA / "problems.jsonl")
        ).problems()
    }
    print(f"== all programs: {len(pairs)}")
    _, official = compare(pairs, problems, args)
    floor = official_run_seconds([problems[q] for q, _ in pairs], [c for _, c in pairs])
    quick = [pair for pair, seconds in zip(pairs, floor) if seconds is not None and seconds < 1]
    long_ = sorted(round(seconds, 1) for seconds in floor if seconds is None or seconds >= 1)
    print(
        f"floor, the programs themselves (official run_test, one interpreter): "
        f"{sum(f or 0 for f in floor):.2f} s, of which {len(long_)} programs of 1 s or more "
        f"(time-outs): {long_}"
    )
    least = max(max(f or 0 for f in floor), sum(f or 0 for f in floor) / args.processes)
    print(
        f"no grader with the official verdicts ends before {least:.2f} s on {args.processes} cores: "
        f"at most {official / least:.2f}x the official grader on these programs"
    )
    print(f"== the {len(quick)} programs that end in under a second")
    ours, theirs = compare(quick, problems, args)
    own = sum(seconds for seconds in floor if seconds is not None and seconds < 1)
    cores = args.processes
    print(
        f"per program, CPU time on {cores} cores: floor {own / len(quick) * 1000:.1f} ms, "
        f"benchkit {ours * cores / len(quick) * 1000:.1f} ms, "
        f"official {theirs * cores / len(quick) * 1000:.1f} ms"
    )


def compare(pairs, problems, args) -> tuple[float, float]:
    """Both graders on `pairs`, `args.rounds` times; prints each round and the median ratio;
    returns the times of the median round (the lower middle one of an even count)."""
    timings = []
    for round_ in range(args.rounds):
        t_ours, ours = benchkit_grade(pairs)
        started = time.perf_counter()
        theirs = codegen_verdicts(
            [problems[q] for q, _ in pairs], [c for _, c in pairs], processes=args.processes, timeout=6
        )
        t_theirs = time.perf_counter() - started
        timings.append((t_theirs / t_ours, t_ours, t_theirs))
        differ = [(q, c, a) for (q, c), a, b in zip(pairs, ours, theirs) if a["passed"] != b]
        for qid, code, row in differ:
            print(f"differs: {qid} {code[:50]!r}: benchkit {row['result']!r}, official {not row['passed']}")
        print(
            f"round {round_ + 1}: benchkit grade {t_ours:6.2f} s, official codegen_metrics "
            f"({args.processes} processes) {t_theirs:6.2f} s: {t_theirs / t_ours:.2f}x; "
            f"verdicts agree {len(pairs) - len(differ)}/{len(pairs)} "
            f"({sum(r['passed'] for r in ours)} pass by benchkit, {sum(theirs)} by the official grader)"
        )
    _, t_ours, t_theirs = statistics.median_low(timings)  # a round's own times, even rounds too
    print(f"speed-up (median of {args.rounds}): {statistics.median(r for r, _, _ in timings):.2f}x")
    return t_ours, t_theirs


def benchkit_grade(pairs: list[tuple[str, str]]) -> tuple[float, list[dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text("".join(json.dumps({"task_id": q, "completion": c}) + "\n" for q, c in pairs))
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "benchkit",
                "grade",
                "--benchmark",
                "lcb",
                "--problems-file",
                str(DATA / "problems.jsonl"),
                "--samples",
                str(samples),
                "--quiet",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        elapsed = time.perf_counter() - started
        rows = [
            json.loads(line)
            for line in samples.with_name("samples.jsonl_results.jsonl").read_text().splitlines()
        ]
    return elapsed, rows


if __name__ == "__main__":
    main()
