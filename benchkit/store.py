"""The results store: `benchmark_results.json` (the seed's format, extended) and per-sample logs.

* The JSON file is only ever rewritten whole and atomically (temp file, fsync,
  rename) under a file lock, so concurrent runs all land and a crash never
  leaves half a file. A file that does not parse is reported and never touched.
* Per-sample records go to `samples/<run_id>.jsonl`, one line per finished
  sample, flushed and fsynced as it finishes: a run killed at any point loses
  at most the samples that were still in flight.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from filelock import FileLock

from benchkit.errors import StoreError
from benchkit.record import migrate

RESULTS_FILE = "benchmark_results.json"


class ResultsStore:
    def __init__(self, results_dir: str | os.PathLike = "results"):
        self.dir = Path(results_dir)
        self.file = self.dir / RESULTS_FILE
        self._lock = FileLock(str(self.file) + ".lock")

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
        from an older one); every other run is kept as it was."""
        run = migrate(run, str(self.file))
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            data = self._read()
            runs = data["runs"]
            for i, existing in enumerate(runs):
                if existing.get("run_id") == run["run_id"]:
                    runs[i] = run
                    break
            else:
                runs.append(run)
            atomic_write(self.file, json.dumps(data, indent=2) + "\n")

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
        if not path.exists():
            return []
        records = []
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines[:-1], start=1):  # the part after the last \n is torn
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise StoreError(f"sample record is not valid JSON ({exc})", where=f"{path}:{number}") from None
        return records

    def sample_log(self, run_id: str) -> "SampleLog":
        return SampleLog(self.samples_file(run_id))


class SampleLog:
    """Append-only, thread-safe, durable log of finished samples."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        self._fh = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        line = json.dumps(record) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    def __enter__(self) -> "SampleLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _drop_torn_tail(path: Path) -> None:
    """Cut a half-written last line (a run killed mid-write) so the next append starts clean."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
