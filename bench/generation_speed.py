"""Generation speed: the same HumanEval subset in process, through llama-server with one slot,
and with four slots (four concurrent requests), in one run.

    .venv/bin/python bench/generation_speed.py [--limit 16] [--max-tokens 256]

Prints per setting: wall time, pure generation time (sum of per-request seconds), tokens,
aggregate tokens/s (tokens / wall) and the ratio to one slot; and how far each run's wall time
is above its generation time (grading and storing hidden under generation).
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchkit.config import RunConfig  # noqa: E402
from benchkit.runner import run  # noqa: E402

SETTINGS = {
    "in process (llama_cpp)": {"backend": "llama_cpp"},
    "llama-server -np 1": {"backend": "llama_server", "parallel": 1},
    "llama-server -np 4": {"backend": "llama_server", "parallel": 4},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, setting in SETTINGS.items():
            config = RunConfig(limit=args.limit, max_tokens=args.max_tokens, results_dir=Path(tmp) / name,
                               **setting)
            res = run(config, progress=False)["results"]
            rows[name] = (res["time_taken"], res["generation_seconds"], res["tokens"], res["score"])
    base = rows["llama-server -np 1"]
    print(f"{'setting':24} {'wall s':>8} {'gen s':>8} {'tokens':>7} {'tok/s':>7} {'vs np1':>7} {'wall/gen':>8} {'pass@1':>7}")
    for name, (wall, gen, tokens, score) in rows.items():
        ratio = (tokens / wall) / (base[2] / base[0])
        print(f"{name:24} {wall:8.1f} {gen:8.1f} {tokens:7d} {tokens / wall:7.1f} {ratio:6.2f}x "
              f"{wall / gen:8.3f} {score:6.1f}%")


if __name__ == "__main__":
    main()
