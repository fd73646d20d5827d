"""A sweep's one progress display: cells and samples of the whole sweep, the current cell and
its pass rate; fed by each cell's run (no run shows a display of its own), as plain lines, as
one tqdm bar at a terminal, and as one widget in a Jupyter kernel."""

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from benchkit.executors import Options
from benchkit.executors.local import run_sweep
from benchkit.sweep import load_sweep
from tests.conftest import REPO, benchkit_cli
from tests.test_scripted import reply, write_script

CELLS = ["human_eval/right/num_samples=1", "human_eval/right/num_samples=2", "human_eval/wrong/num_samples=1"]


def write_sweep(tmp_path, pause_s: float = 0.0):
    """Three cells of 3, 6 and 3 samples: a scripted model that answers right, and one wrong;
    each reply `pause_s` late."""
    right = write_script(
        tmp_path / "right.jsonl", *[reply(i, sample=s, pause_s=pause_s) for i in range(3) for s in range(2)]
    )
    wrong = write_script(
        tmp_path / "wrong.jsonl",
        *[reply(i, sample=s, output="    return 0\n", pause_s=pause_s) for i in range(3) for s in range(2)],
    )
    path = tmp_path / "sweep.yaml"
    path.write_text(
        f"name: t\nbenchmarks: {{human_eval: {{limit: 3}}}}\n"
        f"models: [{{backend: scripted, script: {right}}}, {{backend: scripted, script: {wrong}}}]\n"
        "grid: {num_samples: [1, 2]}\nfixed: {grade_workers: 2}\n"
        "exclude: [{model: wrong, num_samples: 2}]\n"
    )
    return path


@pytest.fixture
def sweep_path(tmp_path):
    return write_sweep(tmp_path)


def display_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("benchkit: ")]


def assert_one_sweep_display(lines: list[str]) -> None:
    """Lines of the sweep's display only: it starts, says each cell's end, and ends complete."""
    assert lines[0] == "benchkit: sweep t started: 3 cells (0 already done), 12 samples to run", lines
    assert not [line for line in lines if line.startswith("benchkit: run ")], lines  # no run's own
    for ended in [
        "1/3 cells, 3/12 samples, cell human_eval/right/num_samples=1 pass 100.0%, ",
        "2/3 cells, 9/12 samples, cell human_eval/right/num_samples=2 pass 100.0%, ",
    ]:
        assert any(line.startswith(f"benchkit: {ended}") for line in lines), (ended, lines)
    assert re.fullmatch(
        r"benchkit: sweep t complete: 3/3 cells, 12/12 samples, cell human_eval/wrong/num_samples=1 "
        r"pass 0\.0%, (–|[0-9.]+) tok/s, \d+:\d\d:\d\d elapsed",
        lines[-1],
    ), lines[-1]


def test_a_sweep_shows_one_display_fed_by_each_cells_run(tmp_path, sweep_path, grading_pool, capsys):
    sweep = load_sweep(sweep_path, tmp_path / "results")
    run_sweep(sweep, Options(tmp_path / "results", pool=grading_pool))
    assert_one_sweep_display(display_lines(capsys.readouterr().err))
    run_sweep(sweep, Options(tmp_path / "results", pool=grading_pool))
    lines = display_lines(capsys.readouterr().err)
    assert lines[0] == "benchkit: sweep t started: 3 cells (3 already done), 0 samples to run"
    assert lines[-1].startswith("benchkit: sweep t complete: 3/3 cells, 0/0 samples, no cell yet")


def test_a_failed_cell_is_counted_and_its_rerun_counts_only_the_samples_left(
    tmp_path, sweep_path, grading_pool, capsys
):
    right = tmp_path / "right.jsonl"
    write_script(right, reply(0), reply(1, error="fatal"), reply(2))
    sweep = load_sweep(_one_sample_each(sweep_path), tmp_path / "results")
    with pytest.raises(Exception, match="1 of 2 cells failed"):
        run_sweep(sweep, Options(tmp_path / "results", pool=grading_pool))
    lines = display_lines(capsys.readouterr().err)
    assert any(line.startswith("benchkit: cell human_eval/right/num_samples=1 failed: ") for line in lines)
    assert lines[-1].startswith("benchkit: sweep t complete: 1/2 cells (1 failed), 4/6 samples, ")
    assert lines[-1].endswith("; run the sweep again to continue")
    write_script(right, reply(0), reply(1), reply(2))
    run_sweep(sweep, Options(tmp_path / "results", pool=grading_pool))
    lines = display_lines(capsys.readouterr().err)
    assert lines[0] == "benchkit: sweep t started: 2 cells (1 already done), 2 samples to run"
    assert lines[-1].startswith(
        "benchkit: sweep t complete: 2/2 cells, 2/2 samples, cell human_eval/right/num_samples=1 pass 100.0%"
    )


def _one_sample_each(path):
    path.write_text(path.read_text().replace("num_samples: [1, 2]", "num_samples: [1]"))
    return path


def test_journals_are_followed_by_whole_lines_only(tmp_path, monkeypatch):
    """A worker's journal: what it held before counts as done before; a line torn by a killed
    worker (cut off when the cell resumes) and a line half-written are never read as samples."""
    from benchkit import progress
    from benchkit.sweep_progress import SweepCounts, SweepProgress

    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.02)

    def sample(passed):
        return (
            json.dumps({"task_id": "x", "sample": 0, "passed": passed, "tokens": 10, "gen_seconds": 1.0})
            + "\n"
        )

    journal = tmp_path / "run.jsonl"
    journal.write_text(sample(True) + '{"task_id": "torn')
    counts = SweepCounts(run_id="t", title="sweep t", total=3, cells=1)
    with SweepProgress(progress.Progress(counts)) as display:
        display.watch_journals({"cell": journal})
        journal.write_text(sample(True) + sample(False) + sample(True)[:20])  # resumed: tail cut
        _wait_for(lambda: counts.graded == 1)
        with journal.open("a") as fh:
            fh.write(sample(True)[20:] + "not a sample\n")
        _wait_for(lambda: counts.graded == 2)
    assert (counts.cell.passed, counts.tokens, counts.gen_seconds) == (1, 20, 2.0)


def _wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
def test_cli_sweep_prints_one_display(tmp_path, sweep_path):
    done = benchkit_cli(
        "sweep",
        sweep_path,
        "--results-dir",
        tmp_path / "results",
        env={**os.environ, "PYTHONPATH": str(REPO), "BENCHKIT_PROGRESS_SECONDS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert_one_sweep_display(display_lines(done.stderr))
    assert len(done.stdout.splitlines()) == 3  # each cell's summary


@pytest.mark.slow
def test_cli_sweep_at_a_terminal_draws_one_tqdm_bar(tmp_path, sweep_path):
    """stderr is a real pseudo-terminal: every state the terminal shows is the sweep's bar."""
    screen = _run_on_a_terminal(
        [
            sys.executable,
            "-m",
            "benchkit",
            "sweep",
            str(sweep_path),
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", screen)
    states = [s.strip() for s in re.split(r"[\r\n]", text) if re.search(r"\d+%\|", s)]  # not warnings
    assert states and all(s.startswith("sweep t: ") for s in states), states
    assert re.match(
        r"sweep t: 100%\|.*\| 12/12 \[.*cells=3/3, cell=human_eval/wrong/num_samples=1, ", states[-1]
    )
    assert "passed=0.0%" in states[-1]


def _run_on_a_terminal(command: list[str]) -> str:
    main, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    proc = subprocess.Popen(
        command,
        stderr=child,
        stdout=subprocess.DEVNULL,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    os.close(child)
    out, deadline = b"", time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # every writer closed the terminal
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=60) == 0, out.decode(errors="replace")[-3000:]
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
    return out.decode(errors="replace")


@pytest.mark.slow
def test_a_sweep_in_a_jupyter_kernel_shows_one_widget(tmp_path, sweep_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from benchkit.executors import Options, executor\n"
            "from benchkit.sweep import load_sweep\n"
            f"records = executor('local')(load_sweep({str(sweep_path)!r}, {str(tmp_path / 'results')!r}), "
            f"Options({str(tmp_path / 'results')!r}))\n"
            "print([r['status'] for r in records])"
        )
    ]
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    outputs = nb.cells[0].outputs
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1, outputs
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "['complete', 'complete', 'complete']" in streams and "tok/s" not in streams, streams
    state = json.dumps(nb.metadata["widgets"])
    assert "benchkit sweep t" in state and "3/3 cells</b>" in state and "12/12</b> samples" in state
    assert "benchkit run " not in state  # no run's own widget


@pytest.mark.slow
def test_a_dask_sweep_follows_the_workers_journals_sample_by_sample(tmp_path):
    """Cells on a LocalCluster's workers: the display moves as their journals grow, before any
    cell ends, and ends with every cell and sample counted."""
    path = write_sweep(tmp_path, pause_s=1.5)
    done = benchkit_cli(
        "sweep",
        path,
        "--executor",
        "dask-local",
        "--workers",
        "2",
        "--results-dir",
        tmp_path / "results",
        env={**os.environ, "PYTHONPATH": str(REPO), "BENCHKIT_PROGRESS_SECONDS": "1"},
    )
    assert done.returncode == 0, done.stderr
    lines = display_lines(done.stderr)
    assert lines[0] == "benchkit: sweep t started: 3 cells (0 already done), 12 samples to run", lines
    assert not [line for line in lines if line.startswith("benchkit: run ")], lines
    assert any(re.match(r"benchkit: 0/3 cells, [1-9]\d*/12 samples, cell ", line) for line in lines), lines
    assert lines[-1].startswith("benchkit: sweep t complete: 3/3 cells, 12/12 samples, cell "), lines[-1]
