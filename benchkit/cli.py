"""`benchkit` command line: run, grade, selfcheck, runs, compare, report."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import typing
from pathlib import Path

from benchkit import interrupts
from benchkit.config import RunConfig, benchmark_fields, fields, flag
from benchkit.errors import BenchkitError

GROUPS = {
    "benchmark": "benchmark",
    "model": "model",
    "sampling": "sampling",
    "grading": "grading",
    "backend": "backends",
    "data": "benchmark data and filters",
    "output": "output",
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
    except BrokenPipeError:  # `benchkit runs | head`: the reader has what it wanted
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # a file or directory benchkit did not expect to fail: name it
        _say(f"error: {exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror or exc}", exc)
        return 1
    except KeyboardInterrupt as exc:
        name = interrupts.signal_name(exc)
        _say(
            f"stopped by {name}",
            exc,
            "finished samples are stored, continue with --resume" if args.command == "run" else "",
        )
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
    for add in (_add_run, _add_grade, _add_sweep, _add_selfcheck, _add_compare, _add_report, _add_runs):
        add(commands)
    return parser


def _add_run(commands) -> None:
    run = commands.add_parser("run", help="run a benchmark on a model")
    run.add_argument("--params", help="papermill parameters YAML to start from")
    _add_setting_flags(run, fields())
    run.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="RUN_ID",
        help="continue the latest unfinished run with these settings, or RUN_ID",
    )
    run.add_argument(
        "--notebook",
        action="store_true",
        help="run through the benchmark's notebook; the executed copy is the report",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)


def _add_grade(commands) -> None:
    grade = commands.add_parser("grade", help="grade a samples file made elsewhere")
    grade.add_argument("--samples", required=True, type=Path, help='JSONL of {"task_id", "completion"}')
    graded = ["benchmark", *fields(group="grading"), *fields(group="data"), *benchmark_fields()]
    _add_setting_flags(grade, list(dict.fromkeys(graded)))
    grade.add_argument("--quiet", action="store_true")
    grade.set_defaults(func=_grade)


def _add_sweep(commands) -> None:
    sweep = commands.add_parser("sweep", help="run every cell of a sweep file that is not done yet")
    sweep.add_argument("file", type=Path, help="sweep YAML (see parameters/sweep-example.yaml)")
    sweep.add_argument("--dry-run", action="store_true", help="list the cells, their state and the work left")
    sweep.add_argument(
        "--executor",
        default="local",
        help="local (default: cells one after another here), dask (a running cluster: "
        "--scheduler) or dask-local (a cluster of --workers local processes)",
    )
    sweep.add_argument("--scheduler", help="dask: the scheduler's address, e.g. tcp://10.0.0.5:8786")
    sweep.add_argument("--workers", type=int, default=2, help="dask-local: worker processes (default 2)")
    sweep.add_argument(
        "--notebook",
        action="store_true",
        help="local: run each cell through its "
        "benchmark's notebook; executed copies in results/reports/<sweep>/ with an index",
    )
    sweep.add_argument(
        "--results-dir",
        default="results",
        type=Path,
        help="shared by every worker (one journal per run; only this process writes benchmark_results.json)",
    )
    sweep.add_argument("--quiet", action="store_true", help="no progress display")
    sweep.set_defaults(func=_sweep)


def _add_selfcheck(commands) -> None:
    check = commands.add_parser("selfcheck", help="check that grading is sound on this machine")
    check.add_argument("--timeout", type=float, default=3.0)
    check.add_argument("--memory-mb", type=int, default=2048)
    check.add_argument("--workers", type=int, default=None)
    check.set_defaults(func=_selfcheck)


def _add_compare(commands) -> None:
    compare = commands.add_parser("compare", help="pair two runs problem by problem")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument("--results-dir", default="results")
    compare.set_defaults(func=_compare)


def _add_report(commands) -> None:
    report = commands.add_parser("report", help="one self-contained HTML file comparing stored runs")
    report.add_argument(
        "run_ids", nargs="*", metavar="RUN_ID", help="runs to compare (default: every finished run)"
    )
    report.add_argument("--benchmark", help="only runs of this benchmark")
    report.add_argument(
        "--model", dest="models", action="append", help="only runs of this model (repeatable)"
    )
    report.add_argument("--sweep", help="only the runs of this sweep, with its table and figures")
    report.add_argument(
        "--baseline",
        help="with --sweep: the cell (or run id) every cell is compared with (default: the first cell)",
    )
    report.add_argument("--results-dir", default="results")
    report.add_argument("--out", type=Path, help="HTML file (default: results/reports/compare-<time>.html)")
    report.set_defaults(func=_report)


def _add_runs(commands) -> None:
    runs = commands.add_parser("runs", help="list stored runs")
    runs.add_argument("--sweep", help="only the runs of this sweep")
    runs.add_argument("--results-dir", default="results")
    runs.set_defaults(func=_runs)


def _add_setting_flags(parser, names: list[str]) -> None:
    """A flag for each RunConfig field named, in its group, with the field's help; every flag
    defaults to "not given", so a --params file's values are not overridden. Values are parsed
    by RunConfig itself, so the flag and the YAML key accept the same things."""
    groups = {}
    for name in names:
        info = RunConfig.model_fields[name]
        group = info.json_schema_extra["group"]
        if group not in groups:
            groups[group] = parser.add_argument_group(GROUPS.get(group, group))
        kwargs = {"dest": name, "default": argparse.SUPPRESS, "help": _help(info)}
        if info.annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif any(typing.get_origin(k) is list for k in typing.get_args(info.annotation)):
            kwargs["nargs"] = "+"
        groups[group].add_argument(flag(name), **kwargs)


def _help(info) -> str:
    choices = [
        c
        for k in (info.annotation, *typing.get_args(info.annotation))
        if typing.get_origin(k) is typing.Literal
        for c in typing.get_args(k)
    ]
    default = "" if info.default is None or info.annotation is bool else f" (default {info.default})"
    return (info.description or "") + (f" [{', '.join(choices)}]" if choices else "") + default


def _run_config(args):
    from benchkit.config import load_parameters, validate_config

    params = getattr(args, "params", None)
    values = load_parameters(params).model_dump(exclude_unset=True) if params else {}
    values.update({name: getattr(args, name) for name in fields() if hasattr(args, name)})
    return validate_config(
        values,
        "command line" + (f" and {params}" if params else ""),
        label=lambda key: f"key '{key}' ({flag(key)})",
    )


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
    return (
        f"{record['run_id']}  {record['benchmark']}  {record['model']}  "
        f"{res['total_passed']}/{res['total_problems']} problems  {ks}  "
        f"{res['time_taken']:.1f}s  [{record['status']}]"
    )


def _grade(args) -> int:
    from benchkit.benchmarks import get_benchmark, time_limit
    from benchkit.grading import grade_file

    config = _run_config(args)
    out, pass_k = grade_file(
        args.samples,
        get_benchmark(config.benchmark, config),
        time_limit(config),
        config.memory_mb,
        config.grade_workers,
        progress=not args.quiet,
    )
    print(f"results: {out}")
    print("  ".join(f"{k}: {v:.2f}%" if k.startswith("pass@") else f"{k}: {v}" for k, v in pass_k.items()))
    return 0


def _sweep(args) -> int:
    from benchkit.executors import Options, executor
    from benchkit.store import ResultsStore
    from benchkit.sweep import load_sweep, plan_table

    sweep = load_sweep(args.file, args.results_dir)
    if args.dry_run:
        print(plan_table(sweep, ResultsStore(args.results_dir)))
        return 0
    options = Options(args.results_dir, not args.quiet, args.scheduler, args.workers, args.notebook)
    records = executor(args.executor)(sweep, options)
    for record in records:
        print(_summary(record))
    return 0


def _selfcheck(args) -> int:
    from benchkit.benchmarks import BENCHMARKS, benchmark_class
    from benchkit.sandbox import Sandbox
    from benchkit.selfcheck import KNOWN_BAD, selfcheck

    with Sandbox(args.workers) as sandbox:
        report = selfcheck(sandbox, args.timeout, args.memory_mb, [benchmark_class(n) for n in BENCHMARKS])
    print(f"isolation: {report.isolation}")
    print(
        f"canonical HumanEval solutions passed: {report.canonical_passed}/{report.canonical_total} "
        f"(slowest {report.slowest_canonical_s:.3f} s of a {args.timeout:g} s limit)"
    )
    print(
        f"known-bad programs failed as expected: {len(KNOWN_BAD) - sum('known-bad' in p for p in report.problems)}"
        f"/{len(KNOWN_BAD)}"
    )
    print(f"reference loop: {report.reference_loop_s:.3f} s")
    print(
        f"benchmark harness programs graded as expected: "
        f"{len(report.benchmark_checked) - sum('self-check program' in p for p in report.problems)}"
        f"/{len(report.benchmark_checked)}"
    )
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
    columns = [
        "run_id",
        "model",
        "quant",
        "settings",
        "problems",
        "solved",
        "score",
        "ci_low",
        "ci_high",
        "time_s",
    ]
    print(runs[columns].round(2).to_string(index=False))
    categories = analysis.category_table(runs, args.results_dir)
    if not categories.empty:
        print("\nsamples per category:\n" + categories.set_axis(runs.run_id).to_string())
    print("\n" + result.summary())
    return 0


def _report(args) -> int:
    from benchkit.report import write_report

    path = write_report(
        args.results_dir, args.out, args.benchmark, args.run_ids, args.models, args.sweep, args.baseline
    )
    print(f"report: {path}")
    return 0


def _runs(args) -> int:
    from benchkit.analysis import runs_table
    from benchkit.report import SWEEP_VIEW

    table = runs_table(args.results_dir, sweep=args.sweep)
    if args.sweep:
        table = table[["run_id", *SWEEP_VIEW, "status"]].round(2)
    else:
        table = table.drop(
            columns=["label", "size_mb", *(["sweep", "cell"] if table.sweep.isna().all() else [])]
        )
    print(table.to_string(index=False) if len(table) else "no runs stored yet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
