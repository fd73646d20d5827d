"""A run's progress, shown where the person running it looks.

- `benchkit run` in a terminal: one tqdm bar on stderr.
- `benchkit run` with stderr not a terminal (a log, CI): a plain line every few seconds.
- In a Jupyter kernel (JupyterLab, papermill, `benchkit run --notebook`): one live widget in the
  notebook, updated in place, and the same plain lines on the terminal the kernel was started
  from (papermill's, or the one `jupyter lab` runs in). Those lines go to the kernel's original
  stderr, beneath ipykernel's capture of fd 2, so they never enter the notebook: an executed
  report holds one widget, not thousands of progress lines.

Every report says samples done / total, the pass rate and tokens per second of generation;
the plain lines start with the run id and come at least every `BENCHKIT_PROGRESS_SECONDS`
(default 5) seconds, whether or not a sample finished since.

A display shows a `Counts`: what it says (its lines, tqdm's postfix, the widget's text) is the
counts' to word, so a sweep (benchkit.sweep_progress) shows its own counts in the same faces.
"""

from __future__ import annotations

import html
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

INTERVAL_SECONDS = float(os.environ.get("BENCHKIT_PROGRESS_SECONDS", "5"))
WIDGET_MIN_SECONDS = 0.25  # front ends need no more than four redraws a second


@dataclass
class Counts:
    """What a progress report says. `graded`, `passed`, `tokens`, `gen_seconds` count this
    session's samples (a resumed run's earlier samples are in `total` and `initial` only)."""

    run_id: str
    title: str
    total: int
    initial: int = 0
    graded: int = 0
    passed: int = 0
    tokens: int = 0
    gen_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)
    smoothing = 0.3  # tqdm's: how much its rate (and so its ETA) follows the latest samples

    @property
    def done(self) -> int:
        return self.initial + self.graded

    def pass_rate(self) -> str:
        return f"{100 * self.passed / self.graded:.1f}%" if self.graded else "–"

    def tokens_per_second(self) -> str:
        return f"{self.tokens / self.gen_seconds:.1f}" if self.gen_seconds > 0 else "–"

    def elapsed(self) -> str:
        return str(timedelta(seconds=int(time.monotonic() - self.started)))

    def remaining(self) -> str:
        if not self.graded or self.done >= self.total:
            return ""
        per_sample = (time.monotonic() - self.started) / self.graded
        return f", ~{timedelta(seconds=int(per_sample * (self.total - self.done)))} left"

    def line(self) -> str:
        return (
            f"{self.done}/{self.total} samples, pass {self.pass_rate()}, "
            f"{self.tokens_per_second()} tok/s, {self.elapsed()} elapsed{self.remaining()}"
        )

    def started_line(self) -> str:
        return f"run {self.run_id} started: {self.title}, {self.total} samples" + (
            f" ({self.initial} already done)" if self.initial else ""
        )

    def ended_line(self, outcome: str) -> str:
        resume = "" if outcome == "complete" else f"; resume with: benchkit run --resume {self.run_id}"
        return f"run {self.run_id} {outcome}: {self.line()}{resume}"

    def postfix(self) -> dict:
        """What tqdm shows after its own count, rate and times."""
        return {"passed": self.pass_rate(), "tok_s": self.tokens_per_second()}

    def label(self) -> str:
        """The widget's accessible name."""
        return f"benchkit run {self.run_id}"

    def summary_html(self, state: str) -> str:
        """The widget's text beside its bar; `state`: running, or how the run ended."""
        return (
            f"<b>{self.done}/{self.total}</b> samples · pass {self.pass_rate()} · "
            f"{self.tokens_per_second()} tok/s · {self.elapsed()}{self.remaining()} · "
            f"{html.escape(self.run_id)} {html.escape(state)}"
        )


class Progress:
    """No output (progress=False); the base of the visible reports. Use as a context manager:
    leaving it says how the run ended and stops the heartbeat."""

    def __init__(self, counts: Counts):
        self.counts = counts
        self.lock = threading.Lock()

    def update(self, graded: int, passed: int, tokens: int, gen_seconds: float) -> None:
        """The run's running totals after another sample was graded."""
        with self.lock:
            c = self.counts
            c.graded, c.passed, c.tokens, c.gen_seconds = graded, passed, tokens, gen_seconds
            self.show(final=False)

    def show(self, final: bool) -> None:
        pass

    def tick(self) -> None:
        """Say where things stand now (called with the lock held): a sweep at each cell's end."""
        self.show(final=False)

    def note(self, text: str) -> None:
        """A message of its own line (a sweep's failed cell), kept clear of the display."""
        print(text, file=sys.stderr, flush=True)

    def close(self, outcome: str) -> None:
        with self.lock:
            self.show(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.close("complete")
        elif issubclass(kind, KeyboardInterrupt):
            self.close("interrupted")
        else:
            self.close(f"stopped: {kind.__name__}")


class TqdmProgress(Progress):
    """One tqdm bar, for a person at a terminal."""

    def __init__(self, counts: Counts):
        super().__init__(counts)
        from tqdm import tqdm

        self.bar = tqdm(
            total=counts.total,
            initial=counts.initial,
            desc=counts.title,
            unit="sample",
            smoothing=counts.smoothing,
        )

    def show(self, final: bool) -> None:
        c = self.counts
        self.bar.set_postfix(c.postfix(), refresh=False)
        self.bar.update(c.done - self.bar.n)

    def tick(self) -> None:
        self.show(final=False)
        self.bar.refresh()

    def note(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def close(self, outcome: str) -> None:
        super().close(outcome)
        self.bar.close()


class LineProgress(Progress):
    """Plain lines on a stream: the run id first, then a status line at least every
    INTERVAL_SECONDS (a heartbeat thread), and how the run ended."""

    def __init__(self, counts: Counts, stream):
        super().__init__(counts)
        self.stream = stream
        self.stopped = threading.Event()
        # a new line first: papermill's own bar leaves the cursor at the end of its line
        self._say(counts.started_line(), start="\n")
        self.heartbeat = threading.Thread(target=self._beat, name="benchkit-progress", daemon=True)
        self.heartbeat.start()

    def _beat(self) -> None:
        while not self.stopped.wait(INTERVAL_SECONDS):
            with self.lock:
                self.tick()

    def tick(self) -> None:
        self._say(self.counts.line())

    def close(self, outcome: str) -> None:
        self.stopped.set()
        self.heartbeat.join(timeout=2)
        super().close(outcome)
        self._say(self.counts.ended_line(outcome))

    def _say(self, text: str, start: str = "") -> None:
        try:
            self.stream.write(f"{start}benchkit: {text}\n")
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: the run goes on without it
            pass


class KernelProgress(LineProgress):
    """In a Jupyter kernel: the lines on the kernel's original stderr, and one widget in the
    notebook: a native <progress> element (role progressbar) and the same counts as text."""

    def __init__(self, counts: Counts):
        import ipywidgets as widgets
        from IPython.display import display

        self.widget = widgets.HTML(layout={"width": "100%"})
        self.shown_at = 0.0
        super().__init__(counts, _terminal_stream())
        self._draw()
        display(self.widget)

    def show(self, final: bool) -> None:
        if final or time.monotonic() - self.shown_at >= WIDGET_MIN_SECONDS:
            self._draw()

    def tick(self) -> None:
        super().tick()
        self._draw()  # elapsed time moves even while a long sample generates

    def close(self, outcome: str) -> None:
        self.outcome = outcome
        super().close(outcome)
        self.stream.close()

    def _draw(self) -> None:
        c = self.counts
        state = getattr(self, "outcome", "running")
        self.shown_at = time.monotonic()
        self.widget.value = (
            f'<div class="benchkit-progress" style="display:flex;gap:1em;align-items:center">'
            f'<progress aria-label="{html.escape(c.label())}" value="{c.done}" '
            f'max="{c.total}" style="width:40%"></progress>'
            f"<span>{c.summary_html(state)}</span></div>"
        )


def open_progress(enabled, run_id: str, title: str, total: int, initial: int = 0) -> Progress:
    """A run's progress report. `enabled`: True (the display that fits where this process
    runs), False (none), or a sweep's display (benchkit.sweep_progress.SweepProgress) that
    the run feeds instead of showing one of its own."""
    if hasattr(enabled, "run_feed"):
        return enabled.run_feed(run_id, total, initial)
    return open_display(bool(enabled), Counts(run_id=run_id, title=title, total=total, initial=initial))


def open_display(enabled: bool, counts: Counts) -> Progress:
    """The display of `counts` that fits where this process runs (none unless `enabled`)."""
    if not enabled:
        return Progress(counts)
    if _in_kernel():
        return KernelProgress(counts)
    if sys.stderr.isatty():
        return TqdmProgress(counts)
    return LineProgress(counts, sys.stderr)


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


def _terminal_stream():
    """The kernel's stderr as it was before ipykernel captured fd 2 into the notebook: the
    terminal of papermill or `jupyter lab`. ipykernel keeps that copy in
    `_original_stdstream_copy`; without the capture, fd 2 itself is that terminal."""
    fd = getattr(sys.stderr, "_original_stdstream_copy", None)
    if fd is None:
        fd = sys.__stderr__.fileno()
    return os.fdopen(os.dup(fd), "w", buffering=1)
