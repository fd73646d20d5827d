"""Faults injected on a real `python -m benchkit run` of the embedded model, on real parts: a
tmpfs of a few KB (disk full), `chattr +i` and a read-only bind mount (unwritable), real
signals, a GGUF truncated under the running model.

Each fault must end in ONE line on stderr naming what failed and where, a non-zero exit
status, the run marked failed or interrupted wherever the results file can still be written,
every finished sample kept, no process of the run left behind, and `--resume` completing the
run (no duplicate (task_id, sample)) once the cause is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchkit.store import ResultsStore
from tests.conftest import REPO

pytestmark = pytest.mark.slow

LIMIT = 4
# one generation thread: on a busy 2-core machine two threads spin on each other's barriers
ARGS = ["--limit", str(LIMIT), "--max-tokens", "48", "--threads", "1", "--quiet"]
DEADLINE = 400


# ------------------------------------------------------------------------------ helpers
class Run:
    """A real `benchkit run` subprocess, and the processes it started."""

    def __init__(self, results: Path, *extra: str, notebook: bool = False, nohup: bool = False):
        self.results = results
        command = [sys.executable, "-m", "benchkit", "run", *ARGS, "--results-dir", str(results), *extra]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # a slow-machine warning is not a fault
        # as started from a terminal (SIGHUP's default), or as `nohup` starts it, whatever this
        # test process inherited (a CI job may run under nohup)
        hup = signal.SIG_IGN if nohup else signal.SIG_DFL
        self.proc = subprocess.Popen(
            command + (["--notebook"] if notebook else []),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, hup),
        )
        self.seen: set[tuple[int, str]] = set()

    def journal_lines(self) -> int:
        files = list((self.results / "samples").glob("*.jsonl"))
        return sum(f.read_bytes().count(b"\n") for f in files)

    def wait_until(self, condition, what: str) -> None:
        """Poll `condition` (noting the run's processes as they come) until true, or fail."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            self.seen |= _descendants(self.proc.pid)
            if condition():
                return
            if self.proc.poll() is not None:
                pytest.fail(
                    f"run ended (exit {self.proc.returncode}) before {what}: {self.proc.stderr.read()}"
                )
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"no {what} within {DEADLINE} s")

    def wait_samples(self, n: int) -> None:
        self.wait_until(lambda: self.journal_lines() >= n, f"{n} sample(s) in the journal")

    def end(self) -> tuple[int, str]:
        """Wait for the run to end (noting its processes meanwhile); none of them may remain."""
        deadline = time.monotonic() + DEADLINE
        while self.proc.poll() is None and time.monotonic() < deadline:  # its output fits a pipe
            self.seen |= _descendants(self.proc.pid)
            time.sleep(0.05)
        _, err = self.proc.communicate(timeout=DEADLINE)
        assert_no_leftovers(self.seen)
        return self.proc.returncode, err


def _descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live process below `root`."""
    parents, starts = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)], starts[int(entry.name)] = int(fields[1]), fields[19]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
        found |= {(pid, starts[pid]) for pid in frontier}
    return found


def _alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"


def assert_no_leftovers(seen: set[tuple[int, str]]) -> None:
    """No sandbox worker, bwrap or kernel of the run outlives it (a SIGKILL is asynchronous:
    give the kernel a moment to deliver it)."""
    deadline = time.monotonic() + 15
    while any(_alive(*p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid, start in seen if _alive(pid, start)]
    assert not left, "left behind: " + "; ".join(
        Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ") for pid in left
    )


def assert_one_line(err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("benchkit: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def only_run(results: Path) -> dict:
    (record,) = ResultsStore(results).runs()
    return record


def journal(results: Path, run_id: str) -> list[dict]:
    path = ResultsStore(results).samples_file(run_id)
    data = path.read_bytes() if path.exists() else b""
    assert data.endswith(b"\n") or not data, "a torn line was left in the journal"
    return ResultsStore(results).samples(run_id)


def resume_completes(results: Path, run_id: str, before: list[dict], expected: int = LIMIT) -> dict:
    """`--resume` finishes the run: every sample once, the finished ones not regenerated."""
    run = Run(results, "--resume", run_id)
    rc, err = run.end()
    assert rc == 0, err
    record = ResultsStore(results).get(run_id)
    after = journal(results, run_id)
    keys = [(r["task_id"], r["sample"]) for r in after]
    assert record["status"] == "complete" and len(keys) == len(set(keys)) == expected
    assert after[: len(before)] == before
    assert record["results"]["samples_done"] == expected
    return record


@pytest.fixture
def tmpfs():
    """mount(path, size): a real tmpfs of `size` at `path`, unmounted after the test."""
    mounted = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); disk-full faults need one")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write to `directory` until its filesystem is full, as another process would."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 1024)
        except OSError as exc:
            assert exc.errno == 28
    return filler


# ------------------------------------------------------------------------------ disk full
def test_disk_full_on_a_24k_results_directory_then_resume(tmp_path, tmpfs):
    """The issue's case: the results directory on a 24 KB tmpfs, a run of 12 problems. The
    journal fills the disk; the space the store keeps in reserve lets the run be marked failed."""
    results = tmpfs(tmp_path / "results", "24k")
    run = Run(results, "--limit", "12")
    rc, err = run.end()
    record = only_run(results)
    before = journal(results, record["run_id"])
    assert rc == 1
    assert_one_line(
        err,
        f"{ResultsStore(results).samples_file(record['run_id'])}: cannot append to the "
        "samples journal: No space left on device",
        f"run {record['run_id']} marked failed with {len(before)} of 12 samples stored",
    )
    assert record["status"] == "failed" and record["results"]["samples_done"] == len(before) > 0
    subprocess.run(["mount", "-o", "remount,size=8m", str(results)], check=True)  # space freed
    resume_completes(results, record["run_id"], before, expected=12)


def test_disk_full_while_appending_to_the_journal(tmp_path, tmpfs):
    results = tmp_path / "results"
    samples = tmpfs(results / "samples", "64k")
    run = Run(results)
    run.wait_samples(1)
    filler = fill(samples)
    rc, err = run.end()
    record = only_run(results)
    path = ResultsStore(results).samples_file(record["run_id"])
    assert rc == 1
    assert_one_line(
        err,
        f"{path}: cannot append to the samples journal: No space left on device",
        f"run {record['run_id']} marked failed",
    )
    before = journal(results, record["run_id"])
    assert record["status"] == "failed" and record["results"]["samples_done"] == len(before) >= 1
    filler.unlink()
    resume_completes(results, record["run_id"], before)


def test_disk_full_while_writing_the_results_file_uses_the_reserve(tmp_path, tmpfs):
    """Another process fills the disk of the results file mid-run: the final record still lands
    whole, in the space the store kept in reserve for it."""
    results = tmpfs(tmp_path / "results", "256k")
    tmpfs(results / "samples", "8m")  # the journal has room: only the results file does not
    run = Run(results)
    run.wait_samples(1)
    fill(results)
    rc, err = run.end()
    record = only_run(results)
    assert rc == 0, err
    assert record["status"] == "complete" and len(journal(results, record["run_id"])) == LIMIT
    assert sorted(p.name for p in results.iterdir() if p.name.startswith(".")) == []  # reserve, temp files


def test_results_file_unwritable_mid_run_then_resume(tmp_path):
    """The results directory turns immutable mid-run (chattr +i): the record cannot be written
    at all; the line says so, the run stays resumable and `--resume` completes it."""
    results = tmp_path / "results"
    run = Run(results)
    run.wait_samples(1)
    if subprocess.run(["chattr", "+i", str(results)], capture_output=True, check=False).returncode:
        run.proc.kill()
        pytest.skip("chattr +i is not permitted here")
    try:
        rc, err = run.end()
    finally:
        subprocess.run(["chattr", "-i", str(results)], check=True)
    record = only_run(results)
    before = journal(results, record["run_id"])
    assert rc == 1
    assert_one_line(
        err,
        f"{results / 'benchmark_results.json'}: cannot write the results file: Operation not permitted",
        "could not be marked complete: --resume completes it",
    )
    assert record["status"] == "running" and len(before) == LIMIT  # what the file held before
    resume_completes(results, record["run_id"], before)
    assert not list(results.glob(".reserve-*")) and not list(results.glob(".*.tmp"))


# ------------------------------------------------------------------------------ unwritable
def _immutable(path: Path):
    path.mkdir(parents=True)
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode:
        pytest.skip("chattr +i is not permitted here")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


def _read_only_bind(path: Path):
    path.mkdir(parents=True)
    done = subprocess.run(
        f"mount --bind {path} {path} && mount -o remount,bind,ro {path}",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot bind-mount read-only here: {done.stderr.strip()}")
    return lambda: subprocess.run(["umount", str(path)], check=True)


def _a_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")


@pytest.mark.parametrize(
    "make,where,reason",
    [
        (_immutable, "results", "results directory is not writable: Operation not permitted"),
        (_read_only_bind, "results", "results directory is not writable: Read-only file system"),
        (_a_file, "results", "is not a directory"),
        (_a_file, "results/samples", "is not a directory"),
    ],
    ids=["chattr+i", "read-only-mount", "file-as-results-dir", "file-as-samples-dir"],
)
def test_unwritable_results_directory_is_refused_before_the_model(tmp_path, make, where, reason):
    results, blocked = tmp_path / "results", tmp_path / where
    undo = make(blocked)
    try:
        # a model that does not exist: were the model looked at first, this would be the error
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchkit",
                "run",
                *ARGS,
                "--model",
                str(tmp_path / "absent.gguf"),
                "--results-dir",
                str(results),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1
        assert_one_line(done.stderr, f"{blocked}: {reason}")
    finally:
        if undo:
            undo()


def test_missing_results_directory_is_created(tmp_path):
    results = tmp_path / "a" / "b" / "results"
    rc, err = Run(results, "--limit", "1").end()
    assert rc == 0, err
    assert only_run(results)["status"] == "complete"


# ------------------------------------------------------------------------------ signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_stop_signal_mid_run_marks_it_interrupted(tmp_path, signum):
    results = tmp_path / "results"
    run = Run(results)
    run.wait_samples(1)
    run.proc.send_signal(signum)
    rc, err = run.end()
    record = only_run(results)
    before = journal(results, record["run_id"])
    assert rc == 128 + signum
    assert_one_line(
        err,
        f"stopped by {signum.name}",
        f"run {record['run_id']} marked interrupted with {len(before)} of {LIMIT} samples stored",
        "--resume",
    )
    assert record["status"] == "interrupted" and 1 <= len(before) < LIMIT
    resume_completes(results, record["run_id"], before)


def test_a_nohup_run_keeps_ignoring_sighup(tmp_path):
    results = tmp_path / "results"
    run = Run(results, nohup=True)  # as `nohup benchkit run ...` starts it
    run.wait_samples(1)
    run.proc.send_signal(signal.SIGHUP)
    rc, err = run.end()
    assert rc == 0, err
    assert only_run(results)["status"] == "complete"


def test_sighup_during_model_load(tmp_path, model_path):
    """The signal is sent as soon as llama.cpp has mapped the model file (during its load, or
    just after: the load takes a fraction of a second). The header check before the run maps
    it too, briefly: so wait for the stored run first."""
    results = tmp_path / "results"
    run = Run(results)
    maps = Path(f"/proc/{run.proc.pid}/maps")
    run.wait_until(lambda: (results / "benchmark_results.json").exists(), "the run stored")
    run.wait_until(lambda: str(model_path) in maps.read_text(), "the model mapped")
    run.proc.send_signal(signal.SIGHUP)
    rc, err = run.end()
    record = only_run(results)
    before = journal(results, record["run_id"])
    assert rc == 128 + signal.SIGHUP
    assert_one_line(err, "stopped by SIGHUP", "marked interrupted")
    assert record["status"] == "interrupted" and len(before) < LIMIT
    resume_completes(results, record["run_id"], before)


def test_sigterm_as_the_run_finishes_never_loses_the_record(tmp_path):
    """The signal lands while the last sample is graded or the record is being saved: the file
    is whole, the run complete or interrupted, never a half-written or lost record."""
    results = tmp_path / "results"
    run = Run(results)
    run.wait_samples(LIMIT)
    run.proc.send_signal(signal.SIGTERM)
    rc, err = run.end()
    json.loads((results / "benchmark_results.json").read_text())
    assert not list(results.glob(".*.tmp"))
    record = only_run(results)
    before = journal(results, record["run_id"])
    assert len(before) == LIMIT
    if rc == 0:  # it had finished before the signal came
        assert record["status"] == "complete"
    else:
        assert rc == 128 + signal.SIGTERM
        line = assert_one_line(err, "stopped by SIGTERM")
        assert record["status"] in ("complete", "interrupted")
        if record["status"] == "complete":
            assert "is complete and stored" in line
        else:
            resume_completes(results, record["run_id"], before)


# ------------------------------------------------------------------------------ the model file
def test_gguf_truncated_mid_run_is_named_and_resume_checks_the_file(tmp_path, model_path):
    model = tmp_path / "model.gguf"
    shutil.copyfile(model_path, model)
    results = tmp_path / "results"
    run = Run(results, "--model", str(model))
    run.wait_samples(1)
    os.truncate(model, model.stat().st_size // 2)
    rc, err = run.end()
    record = only_run(results)
    before = journal(results, record["run_id"])
    assert rc == 1
    assert_one_line(err, f"{model}: the model file was truncated", f"run {record['run_id']} marked failed")
    assert record["status"] == "failed" and record["results"]["samples_done"] == len(before) >= 1

    refused = Run(results, "--resume", record["run_id"])
    rc, err = refused.end()
    assert rc == 1
    assert_one_line(err, f"{model}: file is truncated")
    with model.open("r+b") as fh:  # the right size again, but not the same bytes
        fh.truncate(model_path.stat().st_size)
    rc, err = Run(results, "--resume", record["run_id"]).end()
    assert rc == 1
    assert_one_line(err, "sha256", "a resumed run must use the same file")
    shutil.copyfile(model_path, model)
    resume_completes(results, record["run_id"], before)


def test_gguf_removed_mid_run_is_harmless_in_process(tmp_path, model_path):
    """The model is memory-mapped: removing its file leaves the mapped inode, and the run ends
    as it would have."""
    model = tmp_path / "model.gguf"
    shutil.copyfile(model_path, model)
    results = tmp_path / "results"
    run = Run(results, "--model", str(model))
    run.wait_samples(1)
    model.unlink()
    rc, err = run.end()
    assert rc == 0, err
    record = only_run(results)
    assert record["status"] == "complete" and len(journal(results, record["run_id"])) == LIMIT


# ------------------------------------------------------------------------------ through the notebook
def last_line(err: str, *needles: str) -> str:
    """Under papermill, papermill's own warnings may come first; benchkit's line is the last
    and only one, and no traceback reaches the terminal (the kernel's output goes to its log)."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err and [x for x in lines if x.startswith("benchkit: ")] == lines[-1:], err
    return assert_one_line(lines[-1], *needles)


def test_notebook_run_stopped_by_sigterm_marks_the_kernels_run_interrupted(tmp_path):
    results = tmp_path / "results"
    run = Run(results, notebook=True)
    run.wait_samples(1)
    run.proc.send_signal(signal.SIGTERM)
    rc, err = run.end()  # the kernel and its sandbox workers are gone too
    record = only_run(results)
    before = journal(results, record["run_id"])
    assert rc == 128 + signal.SIGTERM
    last_line(
        err,
        "stopped by SIGTERM",
        f"run {record['run_id']} marked interrupted with {len(before)} of {LIMIT} samples stored",
    )
    assert record["status"] == "interrupted" and len(before) < LIMIT
    resume_completes(results, record["run_id"], before)


def test_notebook_disk_full_while_writing_the_executed_notebook(tmp_path, tmpfs):
    results = tmp_path / "results"
    reports = tmpfs(results / "reports", "256k")
    run = Run(results, notebook=True)
    run.wait_samples(1)
    fill(reports)
    rc, err = run.end()
    record = only_run(results)
    assert rc == 1
    line = last_line(err, "cannot write the executed notebook: No space left on device", str(reports))
    # papermill saves the notebook as each cell ends: the run's cell had finished the run
    assert record["status"] == "complete" and len(journal(results, record["run_id"])) == LIMIT
    assert f"run {record['run_id']} is complete and stored" in line
    assert [p.name for p in reports.iterdir()] == ["filler"]  # no half-written notebook left
