"""`benchkit` command line: run, grade, selfcheck, runs, compare, report."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

from benchkit import interrupts
from benchkit.errors import BenchkitError

# flag -> RunConfig field; every flag defaults to "not given" so YAML values are not overridden
RUN_FLAGS = {
    "--model": ("model", str, "GGUF file (default: the embedded Gemma 3 270M Q4_K_M)"),
    "--benchmark": ("benchmark", str, "human_eval"),
    "--backend": ("backend", str, "llama_cpp (in process), llama_server (managed) or openai (any endpoint)"),
    "--gpu-layers": ("gpu_layers", int, "layers offloaded to the GPU; -1 = all"),
    "--ctx": ("n_ctx", int, "context size in tokens"),
    "--threads": ("n_threads", int, "CPU threads for generation (default: all cores)"),
    "--prompt-style": ("prompt_style", str, "completion (base models) or chat (instruct models)"),
    "--num-samples": ("num_samples", int, "samples per problem, for pass@k"),
    "--limit": ("limit", int, "only the first N problems"),
    "--temperature": ("temperature", float, "0 = greedy"),
    "--top-p": ("top_p", float, None),
    "--top-k": ("top_k", int, "0 = off"),
    "--min-p": ("min_p", float, None),
    "--repeat-penalty": ("repeat_penalty", float, None),
    "--max-tokens": ("max_tokens", int, None),
    "--seed": ("seed", int, "sample i uses seed + i"),
    "--timeout": ("timeout", float, "seconds per program"),
    "--memory-mb": ("memory_mb", int, "memory limit per program"),
    "--workers": ("grade_workers", int, "sandbox workers (default: all cores)"),
    "--results-dir": ("results_dir", str, "where benchmark_results.json lives"),
    "--parallel": ("parallel", int, "concurrent requests = llama-server slots (-np); 1 for reproducible greedy runs"),
    "--base-url": ("base_url", str, "openai backend: the endpoint, e.g. http://127.0.0.1:8080"),
    "--model-name": ("model_name", str, "openai backend: the model to ask for"),
    "--request-timeout": ("request_timeout", float, "seconds per request"),
    "--server-binary": ("server_binary", str, "llama_server backend: the llama-server to run"),
    "--server-port": ("server_port", int, "llama_server backend: port (default: a free one)"),
}
# LiveCodeBench data and filters, for `run` and `grade`
DATA_FLAGS = {
    "--start-date": ("start_date", str, "only problems from this contest date on (YYYY-MM-DD)"),
    "--end-date": ("end_date", str, "only problems up to this contest date (YYYY-MM-DD)"),
    "--release": ("release", str, "official release window v1 … v6 (release_vN: test.jsonl … testN.jsonl)"),
    "--platform": ("platform", str, "atcoder, leetcode or codeforces"),
    "--difficulty": ("difficulty", str, "easy, medium or hard"),
}


def main(argv: list[str] | None = None) -> int:
    """Every way a command can fail ends in one line on stderr and a non-zero exit status:
    1 for an error, 2 for bad settings, 128 + the signal's number when a signal stopped it."""
    args = _parser().parse_args(argv)
    interrupts.install()  # SIGTERM and SIGHUP stop a run as Ctrl-C does: marked interrupted, resumable
    try:
        return args.func(args) or 0
    except BenchkitError as exc:
        _say(f"error: {exc}", exc)
        return exc.exit_code
    except OSError as exc:  # a file or directory benchkit did not expect to fail: name it
        _say(f"error: {exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror or exc}", exc)
        return 1
    except KeyboardInterrupt as exc:
        name = interrupts.signal_name(exc)
        _say(f"stopped by {name}", exc,
             "finished samples are stored, continue with --resume" if args.command == "run" else "")
        return 128 + signal.Signals[name].value


def _say(message: str, exc: BaseException, default: str = "") -> None:
    """One line on stderr: what failed and where, then what became of the run."""
    outcome = getattr(exc, "outcome", None) or default
    line = f"benchkit: {message}" + (f"; {outcome}" if outcome else "")
    with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
        print(line.replace("\n", " | "), file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a benchmark on a model")
    run.add_argument("--params", help="papermill parameters YAML to start from")
    for flag, (dest, kind, help_text) in RUN_FLAGS.items():
        run.add_argument(flag, dest=dest, type=kind, help=help_text, default=argparse.SUPPRESS)
    _add_data_flags(run)
    run.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_ID",
                     help="continue the latest unfinished run with these settings, or RUN_ID")
    run.add_argument("--notebook", action="store_true",
                     help="run through the benchmark's notebook; the executed copy is the report")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    grade = commands.add_parser("grade", help="grade a samples file made elsewhere")
    grade.add_argument("--samples", required=True, type=Path, help='JSONL of {"task_id", "completion"}')
    for flag in ("--benchmark", "--timeout", "--memory-mb", "--workers"):
        dest, kind, help_text = RUN_FLAGS[flag]
        grade.add_argument(flag, dest=dest, type=kind, help=help_text, default=argparse.SUPPRESS)
    _add_data_flags(grade)
    grade.add_argument("--quiet", action="store_true")
    grade.set_defaults(func=_grade)

    check = commands.add_parser("selfcheck", help="check that grading is sound on this machine")
    check.add_argument("--timeout", type=float, default=3.0)
    check.add_argument("--memory-mb", type=int, default=2048)
    check.add_argument("--workers", type=int, default=None)
    check.set_defaults(func=_selfcheck)

    compare = commands.add_parser("compare", help="pair two runs problem by problem")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument("--results-dir", default="results")
    compare.set_defaults(func=_compare)

    report = commands.add_parser("report", help="one self-contained HTML file comparing stored runs")
    report.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to compare (default: every finished run)")
    report.add_argument("--benchmark", help="only runs of this benchmark")
    report.add_argument("--model", dest="models", action="append", help="only runs of this model (repeatable)")
    report.add_argument("--results-dir", default="results")
    report.add_argument("--out", type=Path, help="HTML file (default: results/reports/compare-<time>.html)")
    report.set_defaults(func=_report)

    runs = commands.add_parser("runs", help="list stored runs")
    runs.add_argument("--results-dir", default="results")
    runs.set_defaults(func=_runs)
    return parser


def _add_data_flags(parser) -> None:
    parser.add_argument("--problems-file", dest="problems_file", nargs="+", default=argparse.SUPPRESS,
                        help="LiveCodeBench: the official test*.jsonl files, or their directory")
    for flag, (dest, kind, help_text) in DATA_FLAGS.items():
        parser.add_argument(flag, dest=dest, type=kind, help=help_text, default=argparse.SUPPRESS)
    parser.add_argument("--lcb-corrected", dest="lcb_corrected", action="store_true",
                        default=argparse.SUPPRESS,
                        help="LiveCodeBench: fix the official grader's known false negatives")


def _run_config(args):
    from benchkit.config import load_parameters, validate_config

    params = getattr(args, "params", None)
    values = load_parameters(params).model_dump(exclude_unset=True) if params else {}
    dests = [d for d, _, _ in [*RUN_FLAGS.values(), *DATA_FLAGS.values()]]
    values.update({d: getattr(args, d) for d in [*dests, "problems_file", "lcb_corrected"]
                   if hasattr(args, d)})
    return validate_config(values, "command line" + (f" and {params}" if params else ""))


def _run(args) -> int:
    config = _run_config(args)
    if args.notebook:
        from benchkit.notebook import execute

        report = execute(config, resume=args.resume)
        print(f"report: {report}")
        return 0
    from benchkit.runner import run

    record = run(config, resume=args.resume, progress=not args.quiet)
    print(_summary(record))
    return 0


def _summary(record: dict) -> str:
    res = record["results"]
    ks = "  ".join(f"{k} {v:.2f}%" for k, v in res["pass_at_k"].items())
    return (f"{record['run_id']}  {record['benchmark']}  {record['model']}  "
            f"{res['total_passed']}/{res['total_problems']} problems  {ks}  "
            f"{res['time_taken']:.1f}s  [{record['status']}]")


def _grade(args) -> int:
    from benchkit.benchmarks import get_benchmark, time_limit
    from benchkit.grading import grade_file

    config = _run_config(args)
    out, pass_k = grade_file(args.samples, get_benchmark(config.benchmark, config), time_limit(config),
                             config.memory_mb, config.grade_workers, progress=not args.quiet)
    print(f"results: {out}")
    print("  ".join(f"{k}: {v:.2f}%" if k.startswith("pass@") else f"{k}: {v}" for k, v in pass_k.items()))
    return 0


def _selfcheck(args) -> int:
    from benchkit.sandbox import Sandbox
    from benchkit.selfcheck import KNOWN_BAD, selfcheck

    with Sandbox(args.workers) as sandbox:
        report = selfcheck(sandbox, args.timeout, args.memory_mb)
    print(f"isolation: {report.isolation}")
    print(f"canonical HumanEval solutions passed: {report.canonical_passed}/{report.canonical_total} "
          f"(slowest {report.slowest_canonical_s:.3f} s of a {args.timeout:g} s limit)")
    print(f"known-bad programs failed as expected: {len(KNOWN_BAD) - sum('known-bad' in p for p in report.problems)}"
          f"/{len(KNOWN_BAD)}")
    print(f"reference loop: {report.reference_loop_s:.3f} s")
    for line in report.warnings:
        print(f"warning: {line}")
    for line in report.problems:
        print(f"problem: {line}")
    print("selfcheck: " + ("ok" if report.ok else "FAILED"))
    return 0 if report.ok else 1


def _compare(args) -> int:
    from benchkit import analysis

    result = analysis.compare(args.run_a, args.run_b, args.results_dir)  # refused before any output
    runs = analysis.runs_table(args.results_dir, run_ids=[args.run_a, args.run_b])
    columns = ["run_id", "model", "quant", "settings", "problems", "solved", "score", "ci_low", "ci_high", "time_s"]
    print(runs[columns].round(2).to_string(index=False))
    categories = analysis.category_table(runs, args.results_dir)
    if not categories.empty:
        print("\nsamples per category:\n" + categories.set_axis(runs.run_id).to_string())
    print("\n" + result.summary())
    return 0


def _report(args) -> int:
    from benchkit.report import write_report

    path = write_report(args.results_dir, args.out, args.benchmark, args.run_ids, args.models)
    print(f"report: {path}")
    return 0


def _runs(args) -> int:
    from benchkit.analysis import runs_table

    table = runs_table(args.results_dir)
    print(table.to_string(index=False) if len(table) else "no runs stored yet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
