"""A sweep's cells one after another in this process: one model loaded at a time (each run
frees its backend before the next starts), one sandbox pool and one self-check for all."""

from __future__ import annotations

import contextlib
from pathlib import Path

from benchkit.errors import BenchkitError
from benchkit.executors import Options
from benchkit.grading import GradingPool
from benchkit.runner import Context, run
from benchkit.store import ResultsStore, atomic_write
from benchkit.sweep import Sweep, cell_states
from benchkit.sweep_progress import open_sweep_progress


def run_sweep(sweep: Sweep, options: Options) -> list[dict]:
    """Run every cell that is not done; returns the cells' records (done ones as stored). A cell
    that fails is reported and the sweep goes on; Ctrl-C stops it (that cell: interrupted).
    One progress display for the whole sweep, fed by each cell's run as it grades samples.
    With `options.notebook`, each cell runs through its benchmark's notebook (papermill): the
    executed copies go to results/reports/<sweep>/, with an index.md that links them."""
    store = ResultsStore(options.results_dir)
    states = cell_states(sweep, store)
    records, failed = [], []
    with contextlib.ExitStack() as stack:
        pool = options.pool or stack.enter_context(GradingPool(sweep.cells[0].config.grade_workers))
        display = stack.enter_context(open_sweep_progress(options.progress, sweep.name, states))
        for state in states:
            if state.state == "done":
                records.append(state.record)
                continue
            display.cell_started(state.cell.name)
            try:
                records.append(_run_cell(sweep, state, options, pool, display))
            except BenchkitError as exc:
                failed.append(state.cell.name)
                display.cell_ended(state, None)
                display.note(f"benchkit: cell {state.cell.name} failed: {exc}")
                continue
            display.cell_ended(state, records[-1])
    if options.notebook:
        print(f"notebooks: {write_index(sweep, store)}")
    raise_failed(sweep, failed, len(states))
    return records


def _run_cell(sweep: Sweep, state, options: Options, pool: GradingPool, display) -> dict:
    ref = {"name": sweep.name, "cell": state.cell.name}
    if not options.notebook:
        return run(
            state.cell.config,
            resume=state.run_id,
            progress=display,
            context=Context(pool=pool, sweep=ref),
        )
    from benchkit.notebook import execute

    output = notebook_path(sweep, Path(options.results_dir), state.cell.name)
    execute(state.cell.config, resume=state.run_id, output=output, sweep=ref)
    return cell_states(
        Sweep(sweep.name, sweep.file, [state.cell], sweep.resources), ResultsStore(options.results_dir)
    )[0].record


def notebook_path(sweep: Sweep, results_dir: Path, cell: str) -> Path:
    return results_dir / "reports" / sweep.name / (cell.replace("/", "__") + ".ipynb")


def write_index(sweep: Sweep, store: ResultsStore) -> Path:
    """results/reports/<sweep>/index.md: each cell, its score and status, and its notebook."""
    index = store.dir / "reports" / sweep.name / "index.md"
    lines = [
        f"# Sweep {sweep.name}",
        "",
        f"From `{sweep.file}`.",
        "",
        "| cell | status | pass@1 % | notebook |",
        "|---|---|---|---|",
    ]
    for state in cell_states(sweep, store):
        notebook = notebook_path(sweep, store.dir, state.cell.name)
        score = state.record["results"].get("score") if state.record else None
        link = f"[{notebook.name}]({notebook.name})" if notebook.exists() else ""
        lines.append(
            f"| {state.cell.name} | {state.state} | {'' if score is None else f'{score:.2f}'} | {link} |"
        )
    index.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(index, "\n".join(lines) + "\n")
    return index


def raise_failed(sweep: Sweep, failed: list[str], cells: int) -> None:
    if failed:
        raise BenchkitError(
            f"{len(failed)} of {cells} cells failed ({', '.join(failed)}); the "
            "others are stored; run the sweep again to retry them",
            where=str(sweep.file),
        )
