"""The results store: `benchmark_results.json` (the seed's format, extended) and per-sample logs.

* The JSON file is only ever rewritten whole and atomically (temp file, fsync,
  rename) under a file lock, so concurrent runs all land and a crash never
  leaves half a file. A file that does not parse is reported and never touched.
* Per-sample records go to `samples/<run_id>.jsonl`, one line per finished
  sample, flushed and fsynced as it finishes: a run killed at any point loses
  at most the samples that were still in flight.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from pathlib import Path

from filelock import FileLock

from benchkit import interrupts
from benchkit.environment import process_alive
from benchkit.errors import BenchkitError, StoreError
from benchkit.record import migrate

RESULTS_FILE = "benchmark_results.json"


class ResultsStore:
    def __init__(self, results_dir: str | os.PathLike = "results"):
        self.dir = Path(results_dir)
        self.file = self.dir / RESULTS_FILE
        self._lock = FileLock(str(self.file) + ".lock")
        self._reserve: Path | None = None

    # ------------------------------------------------------------------ runs
    def runs(self) -> list[dict]:
        """Every stored run, in the current schema (older records migrated as they are read)."""
        return [migrate(run, f"{self.file}: runs[{i}]") for i, run in enumerate(self._read()["runs"])]

    def get(self, run_id: str) -> dict:
        for run in self.runs():
            if run.get("run_id") == run_id:
                return run
        raise StoreError(f"no run with run_id {run_id!r}", where=str(self.file))

    def save(self, run: dict) -> None:
        """Insert or replace (by run_id) one run, in the current schema (checked, or migrated
        from an older one); every other run is kept as it was. A stop signal that arrives
        meanwhile is held until the file is whole again."""
        run = migrate(run, str(self.file))
        with interrupts.deferred():
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                with self._lock:
                    data = self._read()
                    _put(data["runs"], run)
                    text = json.dumps(data, indent=2) + "\n"
                    try:
                        atomic_write(self.file, text)
                    except OSError as exc:
                        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not self._release_reserve():
                            raise
                        atomic_write(self.file, text)
            except OSError as exc:
                raise StoreError(
                    f"cannot write the results file: {_reason(exc)}", where=str(self.file)
                ) from None

    @contextlib.contextmanager
    def reserve(self, run_id: str):
        """Keep room for a run's last record while it runs: a file of spare space beside the
        results file, given up when the disk fills, so a run stopped by a full disk can still
        be marked failed. Best effort: on a disk already too full there is none."""
        self._remove_stale_reserves()
        path = self.dir / f".reserve-{run_id}-{os.getpid()}"
        size = (self.file.stat().st_size if self.file.exists() else 0) + 8 * 1024  # + its growth
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
            self._reserve = path
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()
        try:
            yield
        finally:
            self._release_reserve()

    def _release_reserve(self) -> bool:
        path, self._reserve = self._reserve, None
        if path is None:
            return False
        with contextlib.suppress(OSError):
            path.unlink()
        return True

    def _remove_stale_reserves(self) -> None:
        """Reserves of runs killed with kill -9 on this machine."""
        for path in self.dir.glob(".reserve-*-*"):
            pid = path.name.rsplit("-", 1)[1]
            if pid.isdigit() and not process_alive(int(pid)):
                with contextlib.suppress(OSError):
                    path.unlink()

    def check_writable(self) -> None:
        """Fail now, naming the directory, where runs cannot be stored: before a model is loaded.
        A missing results directory is created; a broken results file is reported."""
        for directory in (self.dir, self.dir / "samples"):
            if directory.exists() and not directory.is_dir():
                raise StoreError(
                    "is not a directory (the results directory must be one)", where=str(directory)
                )
            probe = directory / f".benchkit-probe-{os.getpid()}-{threading.get_ident()}"
            try:
                directory.mkdir(parents=True, exist_ok=True)
                atomic_write(probe, "benchkit write check\n")
                probe.unlink()
            except OSError as exc:
                where = exc.filename if exc.filename and Path(exc.filename).parent != directory else directory
                raise StoreError(
                    f"results directory is not writable: {_reason(exc)}", where=str(where)
                ) from None
        self._read()

    def _read(self) -> dict:
        try:
            text = self.file.read_text()
        except FileNotFoundError:
            return {"runs": []}
        except OSError as exc:
            raise StoreError(f"cannot read results file: {exc.strerror}", where=str(self.file)) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"results file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                "it was left untouched: fix or move it",
                where=str(self.file),
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
            raise StoreError(
                'results file must be an object with a "runs" list; it was left untouched',
                where=str(self.file),
            )
        bad = [i for i, run in enumerate(data["runs"]) if not isinstance(run, dict)]
        if bad:
            raise StoreError(f"runs[{bad[0]}] is not an object; file left untouched", where=str(self.file))
        return data

    # --------------------------------------------------------------- samples
    def samples_file(self, run_id: str) -> Path:
        return self.dir / "samples" / f"{run_id}.jsonl"

    def samples(self, run_id: str) -> list[dict]:
        """The finished samples of a run; a torn last line (killed mid-write) is ignored."""
        path = self.samples_file(run_id)
        try:
            lines = path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read the samples journal: {_reason(exc)}", where=str(path)) from None
        records = []
        for number, line in enumerate(lines[:-1], start=1):  # the part after the last \n is torn
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise StoreError(
                    f"sample record is not valid JSON ({exc})", where=f"{path}:{number}"
                ) from None
        return records

    def sample_log(self, run_id: str) -> SampleLog:
        return SampleLog(self.samples_file(run_id))


class SampleLog:
    """Append-only, thread-safe, durable log of finished samples. A record that cannot be
    written whole (disk full) is cut off again, so the log never keeps half a line."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _drop_torn_tail(path)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise StoreError(f"cannot open the samples journal: {_reason(exc)}", where=str(path)) from None
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        data = (json.dumps(record) + "\n").encode("utf-8")
        with self._lock:
            end = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                _write_all(self._fd, data)
                os.fsync(self._fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, end)
                raise StoreError(
                    f"cannot append to the samples journal: {_reason(exc)}", where=str(self.path)
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> SampleLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _put(runs: list[dict], run: dict) -> None:
    for i, existing in enumerate(runs):
        if existing.get("run_id") == run["run_id"]:
            runs[i] = run
            return
    runs.append(run)


def _reason(exc: OSError) -> str:
    """`No space left on device`, `Read-only file system`: what the user can act on."""
    return exc.strerror or str(exc)


def _drop_torn_tail(path: Path) -> None:
    """Cut a half-written last line (a run killed mid-write) so the next append starts clean."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` whole: a temporary file, fsynced, renamed over it. On any
    failure (disk full included) the old file is untouched and the temporary file removed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            _write_all(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:  # name the file being written, not its temporary twin
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def jsonl_lines(path: Path, error: type[BenchkitError], what: str):
    """(file:line, value) for every non-blank line of a JSONL file that people hand to benchkit (a
    samples file, a script); an unreadable file or a line that is not JSON raises `error` naming it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what}: {exc}", where=str(path)) from None
    for number, line in enumerate(lines, start=1):
        if line.strip():
            where = f"{path}:{number}"
            try:
                yield where, json.loads(line)
            except ValueError as exc:
                raise error(f"not valid JSON ({exc})", where=where) from None
