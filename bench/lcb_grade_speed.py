"""benchkit grade vs the official LiveCodeBench grader on the same programs and tests, one run.

    .venv/bin/python bench/lcb_grade_speed.py [--programs 400]

Programs: real model-written solutions with official verdicts from ../shared/data/lcb
(stdin and functional problems). Both graders use the same tests (as benchkit loads them)
and 6 s per test. The official side is its `run_test` in a fresh process per program, as its
`check_correctness` does, with one process per core at a time. Prints both wall times, the
ratio and the verdict agreement.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "lcb"

from benchkit.benchmarks import get_benchmark  # noqa: E402
from benchkit.config import RunConfig  # noqa: E402
from tests.official_lcb import official_verdict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [json.loads(line) for line in (DATA / "solutions.jsonl").read_text().splitlines()]
    random.Random(args.seed).shuffle(rows)
    rows = rows[: args.programs]
    problems = {p.task_id: p for p in get_benchmark(
        "lcb", RunConfig(benchmark="lcb", problems_file=DATA / "problems.jsonl")).problems()}
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text("".join(json.dumps({"task_id": r["question_id"], "completion": r["code"]}) + "\n"
                                   for r in rows))
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "benchkit"), "grade", "--benchmark", "lcb",
                        "--problems-file", str(DATA / "problems.jsonl"), "--samples", str(samples),
                        "--quiet"], check=True, stdout=subprocess.DEVNULL)
        t_ours = time.perf_counter() - started
        ours = [json.loads(line)["passed"] for line in
                samples.with_name("samples.jsonl_results.jsonl").read_text().splitlines()]
    started = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        theirs = list(pool.map(lambda r: official_verdict(problems[r["question_id"]], r["code"]), rows))
    t_theirs = time.perf_counter() - started
    agree = sum(a == b for a, b in zip(ours, theirs))
    print(f"programs: {len(rows)} ({sum(ours)} pass by benchkit, {sum(theirs)} by the official grader)")
    print(f"benchkit grade:        {t_ours:7.2f} s")
    print(f"official LiveCodeBench: {t_theirs:7.2f} s")
    print(f"speed-up: {t_theirs / t_ours:.2f}x   verdict agreement: {agree}/{len(rows)}")


if __name__ == "__main__":
    main()
