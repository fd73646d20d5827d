"""A sweep's cells one after another in this process: one model loaded at a time (each run
frees its backend before the next starts), one sandbox pool and one self-check for all."""

from __future__ import annotations

import sys

from benchkit.errors import BenchkitError
from benchkit.executors import Options
from benchkit.grading import GradingPool
from benchkit.runner import Context, run
from benchkit.store import ResultsStore
from benchkit.sweep import Sweep, cell_states


def run_sweep(sweep: Sweep, options: Options) -> list[dict]:
    """Run every cell that is not done; returns the cells' records (done ones as stored). A cell
    that fails is reported and the sweep goes on; Ctrl-C stops it (that cell: interrupted)."""
    from tqdm.auto import tqdm

    store = ResultsStore(options.results_dir)
    states = cell_states(sweep, store)
    records, failed = [], []
    workers = sweep.cells[0].config.grade_workers
    with GradingPool(workers) as pool, tqdm(total=len(states), unit="cell", disable=not options.progress,
                                            desc=f"sweep {sweep.name}", position=0) as bar:
        for state in states:
            bar.set_postfix_str(state.cell.name)
            if state.state == "done":
                records.append(store.get(state.run_id))
            else:
                try:
                    context = Context(pool=pool, sweep={"name": sweep.name, "cell": state.cell.name})
                    records.append(run(state.cell.config, resume=state.run_id, progress=options.progress,
                                       context=context))
                except BenchkitError as exc:
                    failed.append(state.cell.name)
                    print(f"benchkit: cell {state.cell.name} failed: {exc}", file=sys.stderr)
            bar.update(1)
    raise_failed(sweep, failed, len(states))
    return records


def raise_failed(sweep: Sweep, failed: list[str], cells: int) -> None:
    if failed:
        raise BenchkitError(f"{len(failed)} of {cells} cells failed ({', '.join(failed)}); the "
                            "others are stored; run the sweep again to retry them", where=str(sweep.file))
