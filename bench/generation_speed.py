"""Generation speed: llama.cpp's own `llama-bench` against benchkit in process, through
llama-server with one slot, and with four slots (four concurrent requests), in one run.

    .venv/bin/python bench/generation_speed.py [--limit 16] [--max-tokens 256] [--threads N]
        [--settings NAME ...] [--rounds 1]

"no loop rule" shows what the streaming loop detector costs per token (compare decode tokens/s);
for llama-server that is also the cost of streaming (without the rule a request is not streamed).
"chat" rows send HumanEval's chat messages (prompt_style chat) through the GGUF's chat template,
to the embedded model with Gemma 3's template added (tests/chat_model.py, made once and cached):
the same token loop as completion prompts, so the same decode speed is expected.
`llama-bench` (built once from the llama.cpp sources vendored in the llama-cpp-python sdist,
like llama-server; see benchkit.backends.server_build) measures the model's token generation
(tg) speed with the same threads, before and after the benchkit runs. Prints per setting: wall
time, generation time (sum of per-request seconds), of which prompt evaluation, tokens;
decode tokens/s (tokens / (generation - prompt time), what llama-bench's tg measures) and
tokens/s over generation time, each as a ratio to llama-bench; aggregate tokens/s over wall
and the ratio to one slot; wall over generation time (grading and storing hidden under
generation). A streamed answer's prompt time is llama-server's own, or, for an answer the loop
rule closed before the server's last event, its time to the first token.

Rows with and without the loop rule do different work (the rule cuts answers short, so each
sample's grading, which runs beside the next generation, weighs on fewer tokens) and each row
is one pass over --limit problems: a few percent between rows is noise on a busy machine.
`--depth D` has llama-bench generate after D tokens of context, as benchkit's answers come after
their prompts (0, its default, measures from an empty context). `--rounds N` repeats the whole
(llama-bench, every setting, llama-bench) N times and ends with each setting's median decode
ratio to its round's llama-bench.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchkit.backends.server_build import find_tool  # noqa: E402
from benchkit.config import RunConfig  # noqa: E402
from benchkit.model_file import embedded_model_path  # noqa: E402
from benchkit.runner import run  # noqa: E402
from benchkit.store import ResultsStore  # noqa: E402
from tests.chat_model import templated_copy  # noqa: E402

SETTINGS = {
    "in process (llama_cpp)": {"backend": "llama_cpp"},
    "in process, no loop rule": {"backend": "llama_cpp", "stop_runaway": False},
    "in process, chat": {"backend": "llama_cpp", "prompt_style": "chat"},
    "in process, chat, no loop rule": {"backend": "llama_cpp", "prompt_style": "chat", "stop_runaway": False},
    "llama-server -np 1": {"backend": "llama_server", "parallel": 1},
    "llama-server -np 1, no loop rule": {"backend": "llama_server", "parallel": 1, "stop_runaway": False},
    "llama-server -np 4": {"backend": "llama_server", "parallel": 4},
}


def llama_bench(model: Path, threads: int, tokens: int, depth: int = 0) -> float:
    """llama.cpp's own tg speed (tokens/s) for this model and thread count, generating after
    `depth` tokens of context (its -d)."""
    binary = find_tool("llama-bench")
    done = subprocess.run(
        [
            str(binary),
            "-m",
            str(model),
            "-t",
            str(threads),
            "-p",
            "0",
            "-n",
            str(tokens),
            "-d",
            str(depth),
            "-r",
            "3",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    (result,) = [r for r in json.loads(done.stdout) if r.get("n_gen")]
    return float(result["avg_ts"])


def benchkit_run(config: RunConfig) -> dict:
    record = run(config, progress=False)
    samples = ResultsStore(config.results_dir).samples(record["run_id"])
    gen = sum(r["gen_seconds"] for r in samples)
    prompt = sum(r.get("prompt_seconds") or 0.0 for r in samples)
    return {
        "wall": record["results"]["time_taken"],
        "gen": gen,
        "prompt": prompt,
        "tokens": sum(r["tokens"] for r in samples),
        "score": record["results"]["score"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--rounds", type=int, default=1, help="repeat everything this many times")
    parser.add_argument(
        "--depth",
        type=int,
        default=0,
        help="llama-bench generates after this many tokens of context (-d); HumanEval prompts are "
        "148 tokens on average with Gemma 3 (113 for the first 8): attention grows with the context",
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.depth < 0:
        parser.error("--rounds must be at least 1 and --depth at least 0")
    ratios: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, ratio in one_round(args).items():
            ratios.setdefault(name, []).append(ratio)
    if args.rounds > 1:
        print(f"decode tok/s vs llama-bench, median of {args.rounds} rounds:")
        for name, values in ratios.items():
            print(f"  {name:30} {statistics.median(values):.2f}x  ({', '.join(f'{v:.2f}' for v in values)})")


def one_round(args) -> dict[str, float]:
    """llama-bench, every setting, llama-bench again; prints the table; returns each setting's
    decode tok/s as a ratio to llama-bench."""
    model = embedded_model_path()
    before = llama_bench(model, args.threads, args.max_tokens, args.depth)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.settings:
            chat = SETTINGS[name].get("prompt_style") == "chat"  # needs a GGUF with a chat template
            config = RunConfig(
                **({"model": templated_copy(model)} if chat else {}),
                limit=args.limit,
                max_tokens=args.max_tokens,
                n_threads=args.threads,
                results_dir=Path(tmp) / name,
                **SETTINGS[name],
            )
            rows[name] = benchkit_run(config)
    after = llama_bench(model, args.threads, args.max_tokens, args.depth)
    reference = (before + after) / 2
    print(
        f"llama-bench tg{args.max_tokens} -d {args.depth}, {args.threads} threads: {before:.1f} tok/s before, "
        f"{after:.1f} after; reference {reference:.1f}"
    )
    return print_table(rows, reference)


def print_table(rows: dict[str, dict], reference: float) -> dict[str, float]:
    base = rows.get("llama-server -np 1") or next(iter(rows.values()))
    print(
        f"{'setting':30} {'wall s':>7} {'gen s':>7} {'prompt s':>8} {'tokens':>7} {'decode tok/s':>12} "
        f"{'vs bench':>8} {'gen tok/s':>9} {'vs bench':>8} {'wall tok/s':>10} {'vs np1':>7} {'wall/gen':>8} {'pass@1':>7}"
    )
    ratios = {}
    for name, r in rows.items():
        decode = r["tokens"] / max(r["gen"] - r["prompt"], 1e-9)
        over_gen = r["tokens"] / max(r["gen"], 1e-9)
        over_wall = r["tokens"] / r["wall"]
        ratios[name] = decode / reference
        print(
            f"{name:30} {r['wall']:7.1f} {r['gen']:7.1f} {r['prompt']:8.1f} {r['tokens']:7d} {decode:12.1f} "
            f"{decode / reference:7.2f}x {over_gen:9.1f} {over_gen / reference:7.2f}x {over_wall:10.1f} "
            f"{over_wall / (base['tokens'] / base['wall']):6.2f}x {r['wall'] / r['gen']:8.3f} {r['score']:6.1f}%"
        )
    return ratios


if __name__ == "__main__":
    main()
