"""benchkit grade vs the official LiveCodeBench grader at its own entry point, same programs, one run.

    .venv/bin/python bench/lcb_grade_speed.py [--programs 400] [--variants-every 5] [--processes N]

Programs: real model-written solutions from ../shared/data/lcb (stdin and LeetCode problems)
plus broken variants of one in `--variants-every` (no output, an exception, a syntax error,
sys.exit before printing, a wrong constant). Tests: the problems' tests as benchkit loads them.
The official side is `livecodebench.evaluation.codegen_metrics(samples, generations,
num_process_evaluate=<cores>, timeout=6)` from PyPI nvidia-livecodebench, called in a fresh
interpreter (tests/official_lcb.py); benchkit's is `benchkit grade --benchmark lcb`. Both are
timed as whole commands; prints both, the ratio and the verdict agreement (every disagreement).
"""

import argparse
import json
import os
import random
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
from tests.official_lcb import codegen_verdicts  # noqa: E402

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
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pairs = programs(args.programs, args.variants_every, args.seed)
    problems = {
        p.task_id: p
        for p in get_benchmark(
            "lcb", RunConfig(benchmark="lcb", problems_file=DATA / "problems.jsonl")
        ).problems()
    }
    t_ours, ours = benchkit_grade(pairs)
    started = time.perf_counter()
    theirs = codegen_verdicts(
        [problems[qid] for qid, _ in pairs], [code for _, code in pairs], processes=args.processes, timeout=6
    )
    t_theirs = time.perf_counter() - started
    differ = [(qid, code, a) for (qid, code), a, b in zip(pairs, ours, theirs) if a["passed"] != b]
    for qid, code, row in differ:
        print(f"differs: {qid} {code[:50]!r}: benchkit {row['result']!r}, official {not row['passed']}")
    print(
        f"programs: {len(pairs)} ({sum(r['passed'] for r in ours)} pass by benchkit, "
        f"{sum(theirs)} by the official grader)"
    )
    print(f"benchkit grade:                          {t_ours:7.2f} s")
    print(f"official codegen_metrics ({args.processes} processes): {t_theirs:7.2f} s")
    print(f"speed-up: {t_theirs / t_ours:.2f}x   verdict agreement: {len(pairs) - len(differ)}/{len(pairs)}")


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
