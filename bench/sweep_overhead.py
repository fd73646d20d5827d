"""What a sweep saves over a shell loop, and what it costs per cell, measured side by side.

    .venv/bin/python bench/sweep_overhead.py [--cells 4] [--limit 2] [--max-tokens 32]

The same k cells (the embedded model, HumanEval's first problems, one seed per cell) run as:
  1. k separate `benchkit run` commands (a shell loop: each starts Python, a sandbox pool, a
     171-program self-check, and loads the model);
  2. one `benchkit sweep` (one process, one pool, one self-check; each cell loads its model);
  3. one `benchkit sweep --executor dask-local --workers 1` (the same, as Dask tasks).
Per cell, overhead = (wall - generation - grading) / k, where generation and grading are the
sums of each sample's own seconds. Prints walls, overhead per cell and the loop/sweep ratio;
verdicts must agree across the three.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchkit.store import ResultsStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    seeds = list(range(1, args.cells + 1))
    settings = {"limit": args.limit, "max_tokens": args.max_tokens, "temperature": 0.7}
    with tempfile.TemporaryDirectory(prefix="benchkit-sweep-bench-") as tmp:
        tmp = Path(tmp)
        sweep = tmp / "sweep.yaml"
        sweep.write_text(
            json.dumps(
                {
                    "name": "bench",
                    "benchmarks": {"human_eval": settings},
                    "models": ["embedded"],
                    "grid": {"seed": seeds},
                }
            )
        )
        loop = [
            [
                sys.executable,
                "-m",
                "benchkit",
                "run",
                "--quiet",
                "--limit",
                str(args.limit),
                "--max-tokens",
                str(args.max_tokens),
                "--temperature",
                "0.7",
                "--seed",
                str(seed),
                "--results-dir",
                str(tmp / "loop"),
            ]
            for seed in seeds
        ]
        walls = {
            "shell loop of benchkit run": timed(loop),
            "benchkit sweep (local)": timed([cli(sweep, tmp / "local")]),
            "benchkit sweep (dask-local, 1 worker)": timed(
                [cli(sweep, tmp / "dask", "--executor", "dask-local", "--workers", "1")]
            ),
        }
        dirs = dict(zip(walls, [tmp / "loop", tmp / "local", tmp / "dask"]))
        verdicts = {name: verdicts_of(path) for name, path in dirs.items()}
        print(f"{args.cells} cells x {args.limit} problems, max_tokens {args.max_tokens}\n")
        print(f"{'':40s} {'wall s':>8s} {'gen s':>8s} {'grade s':>8s} {'overhead s/cell':>16s}")
        for name, wall in walls.items():
            generation, grading = work_of(dirs[name])
            print(
                f"{name:40s} {wall:8.1f} {generation:8.1f} {grading:8.1f} "
                f"{(wall - generation - grading) / args.cells:16.2f}"
            )
        loop_wall, sweep_wall = walls["shell loop of benchkit run"], walls["benchkit sweep (local)"]
        print(
            f"\nshell loop / sweep wall: {loop_wall / sweep_wall:.2f}x "
            f"(saved {(loop_wall - sweep_wall) / args.cells:.1f} s per cell)"
        )
        dask_extra = (walls["benchkit sweep (dask-local, 1 worker)"] - sweep_wall) / args.cells
        print(f"dask-local over local: {dask_extra:+.1f} s per cell (cluster start included)")
        same = len({json.dumps(v, sort_keys=True) for v in verdicts.values()}) == 1
        print(f"verdicts identical across the three: {same}")


def cli(sweep: Path, results: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchkit",
        "sweep",
        str(sweep),
        "--quiet",
        "--results-dir",
        str(results),
        *extra,
    ]


def timed(commands: list[list[str]]) -> float:
    started = time.perf_counter()
    for command in commands:
        subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def work_of(results: Path) -> tuple[float, float]:
    store = ResultsStore(results)
    samples = [s for run in store.runs() for s in store.samples(run["run_id"])]
    return sum(s["gen_seconds"] for s in samples), sum(s.get("grade_seconds", 0.0) for s in samples)


def verdicts_of(results: Path) -> list:
    store = ResultsStore(results)
    return sorted(
        (run["config"]["settings"]["seed"], s["task_id"], s["passed"], s["output"])
        for run in store.runs()
        for s in store.samples(run["run_id"])
    )


if __name__ == "__main__":
    main()
