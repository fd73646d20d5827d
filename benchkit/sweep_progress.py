"""A sweep's progress: one display for all its cells, in the faces a run's progress has
(benchkit.progress: a widget in a Jupyter kernel and lines on its terminal, tqdm at a terminal,
plain lines elsewhere).

It counts the samples of the cells this session runs (what they had left when it started):
cells done / total, samples done / total, the current cell and its pass rate so far, tokens per
second, elapsed time and the time left at the sweep's overall rate of samples. A cell run in
this process feeds it sample by sample: the run is given this display as its `progress`
(`run_feed`), in place of one of its own. Cells on Dask workers are followed sample by sample
through the journals they append to in the shared results directory (`watch_journals`), and
set right by their records when they end; a cell run in a notebook's kernel moves it on when
it ends. Plain lines come every few seconds (the heartbeat of benchkit.progress) and at each
cell's end.
"""

from __future__ import annotations

import html
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from benchkit import progress
from benchkit.progress import Counts, Progress, open_display


@dataclass
class SweepCounts(Counts):
    """`run_id` is the sweep's name; `graded`, `tokens` and `gen_seconds` this session's."""

    cells: int = 0
    cells_done: int = 0  # including the cells done before this session
    cells_failed: int = 0
    cell: Counts | None = None  # the cell heard from last: the one running, or that ended last
    running: dict = field(default_factory=dict)  # cell name → (its Counts, graded in this session)
    ended: tuple = (0, 0, 0.0)  # graded, tokens, gen_seconds of this session's ended cells
    smoothing = 0.0  # the ETA from the sweep's overall rate, not from the last cell's

    def follow(self, cell: Counts, graded: int) -> None:
        """`cell` (titled by its name) as it stands; `graded` of its samples were graded in this
        session. Cells on Dask workers run side by side: the sweep counts them all."""
        self.cell = cell
        self.running[cell.title] = (cell, graded)
        total_graded, tokens, seconds = self.ended
        for each, each_graded in self.running.values():
            total_graded, tokens, seconds = (
                total_graded + each_graded,
                tokens + each.tokens,
                seconds + each.gen_seconds,
            )
        self.graded, self.tokens, self.gen_seconds = total_graded, tokens, seconds

    def end_cell(self, name: str, ok: bool) -> None:
        cell, graded = self.running.pop(name, (Counts("", name, 0), 0))
        before = self.ended
        self.ended = (before[0] + graded, before[1] + cell.tokens, before[2] + cell.gen_seconds)
        self.cells_done += ok
        self.cells_failed += not ok

    def cells_line(self, unit: str = " cells") -> str:
        failed = f" ({self.cells_failed} failed)" if self.cells_failed else ""
        return f"{self.cells_done}/{self.cells}{unit}{failed}"

    def cell_line(self) -> str:
        return f"cell {self.cell.title} pass {self.cell.pass_rate()}" if self.cell else "no cell yet"

    def line(self) -> str:
        return (
            f"{self.cells_line()}, {self.done}/{self.total} samples, {self.cell_line()}, "
            f"{self.tokens_per_second()} tok/s, {self.elapsed()} elapsed{self.remaining()}"
        )

    def started_line(self) -> str:
        return (
            f"sweep {self.run_id} started: {self.cells} cells ({self.cells_done} already done), "
            f"{self.total} samples to run"
        )

    def ended_line(self, outcome: str) -> str:
        again = "" if outcome == "complete" and not self.cells_failed else "; run the sweep again to continue"
        return f"sweep {self.run_id} {outcome}: {self.line()}{again}"

    def postfix(self) -> dict:
        cell = {"cell": self.cell.title, "passed": self.cell.pass_rate()} if self.cell else {}
        return {"cells": self.cells_line(unit=""), **cell, "tok_s": self.tokens_per_second()}

    def label(self) -> str:
        return f"benchkit sweep {self.run_id}"

    def summary_html(self, state: str) -> str:
        return (
            f"<b>{self.cells_line()}</b> · <b>{self.done}/{self.total}</b> samples · "
            f"{html.escape(self.cell_line())} · {self.tokens_per_second()} tok/s · "
            f"{self.elapsed()}{self.remaining()} · sweep {html.escape(self.run_id)} {html.escape(state)}"
        )


class SweepProgress:
    """The display a sweep's executor opens once (a context manager, like a run's) and tells
    when each cell starts and ends; a run in this process feeds it through `run_feed`."""

    def __init__(self, display: Progress):
        self.display, self.counts = display, display.counts
        self.cell_name = ""
        self.fed = False  # whether the current cell's run fed this display
        self.journals: dict[str, _Journal] = {}
        self.stopped = threading.Event()
        self.watcher: threading.Thread | None = None

    def cell_started(self, name: str) -> None:
        """The next cell runs in this process (its run may feed this display)."""
        with self.display.lock:
            self.cell_name, self.fed = name, False
            self.counts.follow(Counts(run_id="", title=name, total=0), 0)
            self.display.show(final=False)

    def run_feed(self, run_id: str, total: int, initial: int) -> Progress:
        """What the current cell's run reports to (benchkit.progress.open_progress): no output."""
        self.fed = True
        return _RunFeed(self, Counts(run_id=run_id, title=self.cell_name, total=total, initial=initial))

    def follow(self, cell: Counts) -> None:
        with self.display.lock:
            self.counts.follow(cell, cell.graded)
            self.display.show(final=False)

    def watch_journals(self, journals: dict[str, Path]) -> None:
        """Cells that run elsewhere (on Dask workers) but append each graded sample to a journal
        this process sees (cell name → its path in the shared results directory): follow them
        sample by sample, reading what was appended every few seconds. What a cell's record says
        when it ends replaces what was read."""
        self.journals = {name: _Journal(name, path) for name, path in journals.items()}
        self.watcher = threading.Thread(target=self._watch, name="benchkit-journals", daemon=True)
        self.watcher.start()

    def _watch(self) -> None:
        while not self.stopped.wait(min(2.0, progress.INTERVAL_SECONDS)):
            grown = [journal for journal in list(self.journals.values()) if journal.read()]
            with self.display.lock:
                for journal in grown:
                    if journal.counts.title in self.journals:  # its cell has not ended meanwhile
                        self.counts.follow(journal.counts, journal.counts.graded)
                self.display.show(final=False)

    def cell_ended(self, state, record: dict | None) -> None:
        """`state`: the cell's benchkit.sweep.CellState when the sweep started; `record`: its
        run's record, or None if the cell failed."""
        with self.display.lock:
            self.journals.pop(state.cell.name, None)
            if record is not None and not self.fed:  # it ran elsewhere: its record says what it did
                self.counts.follow(_cell_counts(state, record), _graded_since(state, record))
            self.counts.end_cell(state.cell.name, record is not None)
            self.fed = False
            self.display.tick()

    def note(self, text: str) -> None:
        with self.display.lock:
            self.display.note(text)

    def __enter__(self) -> SweepProgress:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        self.stopped.set()
        if self.watcher is not None:
            self.watcher.join(timeout=10)
        self.display.__exit__(kind, exc, tb)


class _RunFeed(Progress):
    """A run's progress inside a sweep: its counts go to the sweep's display."""

    def __init__(self, sweep: SweepProgress, counts: Counts):
        super().__init__(counts)
        self.sweep = sweep

    def show(self, final: bool) -> None:
        self.sweep.follow(self.counts)


def open_sweep_progress(enabled: bool, name: str, states: list) -> SweepProgress:
    """The display of a sweep whose cells are `states` (benchkit.sweep.cell_states)."""
    to_run = [s for s in states if s.state != "done"]
    counts = SweepCounts(
        run_id=name,
        title=f"sweep {name}",
        total=sum(s.samples_expected - s.samples_done for s in to_run),
        cells=len(states),
        cells_done=len(states) - len(to_run),
    )
    return SweepProgress(open_display(enabled, counts))


class _Journal:
    """A cell's samples journal as another process appends to it: whole lines only, so a line
    being written, or torn by a worker killed mid-write (cut off before the cell resumes), is
    never read; a line that is not a sample is skipped."""

    def __init__(self, name: str, path: Path):
        self.path = path
        self.counts = Counts(run_id=path.stem, title=name, total=0)
        try:
            data = path.read_bytes()
        except OSError:  # a new cell's journal appears once its first sample is graded
            data = b""
        self.offset = data.rfind(b"\n") + 1  # the samples there now were done before this session

    def read(self) -> bool:
        """Count the samples appended since the last read; whether there were any."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return False
        data = data[: data.rfind(b"\n") + 1]
        self.offset += len(data)
        for line in data.splitlines():
            try:
                row = json.loads(line)
                passed, tokens = bool(row["passed"]), int(row.get("tokens") or 0)
                seconds = float(row.get("gen_seconds") or 0.0)
            except (ValueError, TypeError, KeyError):
                continue
            c = self.counts
            c.graded, c.passed, c.tokens, c.gen_seconds = (
                c.graded + 1,
                c.passed + passed,
                c.tokens + tokens,
                c.gen_seconds + seconds,
            )
        return bool(data)


def _cell_counts(state, record: dict) -> Counts:
    results = record.get("results", {})
    return Counts(
        run_id=record["run_id"],
        title=state.cell.name,
        total=state.samples_expected,
        graded=results.get("total_samples", 0),
        passed=results.get("samples_passed", 0),
        tokens=results.get("tokens", 0),
        gen_seconds=results.get("generation_seconds", 0.0),
    )


def _graded_since(state, record: dict) -> int:
    return max(0, record.get("results", {}).get("samples_done", 0) - state.samples_done)
