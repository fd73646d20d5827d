"""One benchmark run: generate every sample, grade it while the next one generates, store it.

A run is resumable at any point: each finished sample is a durable line in
`samples/<run_id>.jsonl`, and `--resume` generates only the samples that have none.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from benchkit import grading, interrupts, scoring
from benchkit.backends import open_backend
from benchkit.benchmarks import get_benchmark, time_limit
from benchkit.config import RunConfig, fields
from benchkit.environment import describe_machine, process_alive
from benchkit.errors import BenchkitError, ConfigError, GenerationError, SandboxError, StoreError
from benchkit.grading import GradingPool
from benchkit.model_file import ModelInfo, embedded_model_path, inspect_model
from benchkit.progress import open_progress
from benchkit.record import SCHEMA_VERSION
from benchkit.sandbox import has_scheduler_statistics
from benchkit.store import ResultsStore

if TYPE_CHECKING:
    from benchkit.sweep_progress import SweepProgress


@dataclass
class Context:
    """What a run shares with other runs (a sweep's) or is given from outside."""

    pool: GradingPool | None = None  # a sandbox pool, self-checked once per limits; default: its own
    sweep: dict | None = None  # {"name", "cell"}, stored with the run
    store: ResultsStore | None = None  # default: the results directory's; a Dask worker's keeps
    #                                    the record in memory and only the journal on disk


def run(
    config: RunConfig,
    resume: str | bool | None = None,
    progress: bool | SweepProgress = True,
    context: Context | None = None,
) -> dict:
    """Run (or resume) a benchmark and return its stored record.

    `resume`: a run_id, or True for the latest unfinished run with the same settings.
    `progress`: show the run's own progress, or not, or feed a sweep's display with it.
    Ctrl-C marks the run interrupted and re-raises KeyboardInterrupt; any other error marks
    it failed. Either way every finished sample is kept and `resume` continues from there.
    """
    context = context or Context()
    store = context.store or ResultsStore(config.results_dir)
    store.check_writable()  # before the model is hashed or loaded
    if resume:
        record = _find_resumable(store, config, resume)
        config = _config_of(record, config)
        record["config"]["settings"] = config.settings()  # same identity; where and how are today's
    else:
        record = new_record(config, context.sweep)
    benchmark = get_benchmark(config.benchmark, config)
    _check_same_model(record, model_info(config))
    problems = benchmark.problems()[: config.limit]
    execution = _Execution(config, benchmark, problems, store, record)
    if context.pool is not None:
        return execution.go(progress, context.pool)
    with GradingPool(config.grade_workers) as own:
        return execution.go(progress, own)


def new_record(config: RunConfig, sweep: dict | None = None, status: str = "running") -> dict:
    """A new run of `config` in the current schema (benchkit.record), not stored yet; its
    sandbox, data and backend groups are filled in as the run learns them."""
    info = model_info(config)
    if config.prompt_style == "chat" and not info.has_chat_template:
        raise ConfigError(
            f"{info.path} has no chat template (a base model?); use prompt_style completion",
            where="prompt_style",
        )
    now = datetime.now(timezone.utc)
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{now:%Y%m%d-%H%M%S}-{config.benchmark}-{secrets.token_hex(3)}",
        "timestamp": now.isoformat(timespec="seconds"),
        "benchmark": config.benchmark,
        "model": info.name if info.size == 0 else Path(info.path).stem,
        "status": status,
        "config": {
            "path": info.path,
            "gpu_layers": config.gpu_layers,
            "settings": config.settings(),
            "model": info.as_config(),
            "machine": describe_machine(),
            "backend": {},
            "sandbox": {},
            "data": {},
        },
        "results": {},
    }
    return record | ({"sweep": sweep} if sweep else {})


def model_info(config: RunConfig) -> ModelInfo:
    """The GGUF file's facts; without a local file (a remote endpoint, a script), what names it."""
    if config.model is None and config.backend in ("openai", "scripted"):
        name = (
            config.model_name or "default" if config.backend == "openai" else Path(config.script or "").stem
        )
        path = f"{config.base_url}#{name}" if config.backend == "openai" else f"script:{config.script}"
        return ModelInfo(
            path=path,
            name=name,
            architecture="unknown",
            quant="unknown",
            context_length=None,
            has_chat_template=True,
            size=0,
            sha256="",
        )
    return inspect_model(config.model or embedded_model_path())


class _Execution:
    def __init__(self, config, benchmark, problems, store, record):
        self.config, self.benchmark, self.problems = config, benchmark, problems
        self.store, self.record = store, record
        self.run_id = record["run_id"]
        self.errors: list[BaseException] = []
        self.recorded: list[Future] = []  # one per answer sent to grading, done once it is stored
        self.graded = self.passed = self.tokens = 0
        self.gen_seconds = 0.0
        self.lock = threading.Lock()
        self.stored: str | None = None  # the status the results file holds for this run

    def go(self, progress: bool, pool: GradingPool) -> dict:
        done = {(r["task_id"], r["sample"]) for r in self.store.samples(self.run_id)}
        todo = [
            (p, i)
            for p in self.problems
            for i in range(self.config.num_samples)
            if (p.task_id, i) not in done
        ]
        started = time.monotonic()
        self._mark("running")
        with self.store.reserve(self.run_id):  # room to mark the run failed on a full disk
            try:
                with (
                    self.store.sample_log(self.run_id) as log,
                    interrupts.last_words(lambda: self._finish_and_say("failed", started)),
                ):
                    self._selfcheck(pool)
                    self._generate(todo, pool.sandbox, log, progress, len(done))
            except BaseException as exc:
                self._stop(exc, started)
                raise
            return self._complete(started)

    def _selfcheck(self, pool: GradingPool) -> None:
        """Refuse to score with a sandbox that passes bad programs or fails good ones."""
        check = pool.selfcheck(time_limit(self.config), self.config.memory_mb, self.benchmark)
        self.record["config"]["sandbox"] = {
            "isolation": pool.sandbox.isolation,
            "time_limit_s": time_limit(self.config),
            "time_limit_clock": self.benchmark.time_limit_clock
            if has_scheduler_statistics()
            else "wall-clock",
            "selfcheck": check.as_config(),
        }
        self.record["config"]["data"] = self.benchmark.describe()
        if not check.ok:
            raise SandboxError("grading self-check failed: " + "; ".join(check.problems[:5]))

    def _generate(self, todo, sandbox, log, progress, already_done) -> None:
        server_log = self.store.dir / "logs" / f"{self.run_id}-server.log"
        backend = open_backend(
            self.config.backend, self.config, self.record["config"]["path"], log_path=server_log
        )
        try:
            self.record["config"]["backend"] = backend.describe()
            self._mark("running")
            with open_progress(
                progress,
                self.run_id,
                f"{self.config.benchmark} {self.record['model']}",
                total=len(todo) + already_done,
                initial=already_done,
            ) as bar:
                self._generate_all(todo, backend, sandbox, log, bar)
                wait(self.recorded)
                self._raise_stored_error()
        finally:
            backend.close()
            wait(self.recorded)  # whatever stopped the run, every answer it has is graded and stored

    def _generate_all(self, todo, backend, sandbox, log, bar) -> None:
        """One request at a time, or `parallel` at once against as many server slots."""
        if self.config.parallel == 1:
            for problem, index in todo:
                self._raise_stored_error()
                self._sample(problem, index, backend, sandbox, log, bar)
            return
        pool = ThreadPoolExecutor(self.config.parallel, thread_name_prefix="generate")
        try:
            generated = [pool.submit(self._sample, p, i, backend, sandbox, log, bar) for p, i in todo]
            for future in generated:
                future.result()  # the first error stops the run
        except BaseException:  # Ctrl-C or a dead server: drop queued samples, don't wait on requests
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _sample(self, problem, index, backend, sandbox, log, bar):
        style = self.config.prompt_style
        prompt = self.benchmark.prompt(problem, style)
        row = {"task_id": problem.task_id, "sample": index, "prompt": prompt}
        try:
            gen = backend.generate(prompt, self.config.sampling(index, self.benchmark.stop(style)))
        except GenerationError as exc:
            row.update(
                output="",
                completion=None,
                program=None,
                tokens=0,
                gen_seconds=0.0,
                finish_reason="error",
                passed=False,
                result=f"failed: {exc}",
                category="generation_error",
                grade_seconds=0.0,
            )
            self._record(row, log, bar)
            return
        completion = self.benchmark.completion(problem, gen.text, style)
        job = (
            None
            if completion is None
            else self.benchmark.job(problem, completion, time_limit(self.config), self.config.memory_mb)
        )
        row.update(
            output=gen.text,
            completion=completion,
            program=job and job.source,
            tokens=gen.tokens,
            gen_seconds=round(gen.seconds, 4),
            finish_reason=gen.finish_reason,
            prompt_seconds=gen.prompt_seconds,
            **({"loop": gen.loop} if gen.loop else {}),
        )
        recorded: Future = Future()
        self.recorded.append(recorded)
        grading.submit(sandbox, self.benchmark, job).add_done_callback(
            lambda f: self._graded(row, f, log, bar, recorded)
        )

    def _graded(self, row, future, log, bar, recorded) -> None:
        try:
            outcome = future.result()
            row.update(
                grading.verdict(outcome, row["finish_reason"], self.benchmark.stored_details),
                grade_seconds=outcome.seconds if outcome else 0.0,
            )
            self._record(row, log, bar)
        except BaseException as exc:  # surfaced by the generating thread
            self.errors.append(exc)
        finally:
            recorded.set_result(None)

    def _record(self, row, log, bar) -> None:
        log.write(row)
        with self.lock:
            self.graded += 1
            self.passed += row["passed"]
            self.tokens += row["tokens"]
            self.gen_seconds += row["gen_seconds"]
            bar.update(self.graded, self.passed, self.tokens, self.gen_seconds)

    def _raise_stored_error(self) -> None:
        if self.errors:
            raise self.errors[0]

    def _mark(self, status: str) -> None:
        self.record["status"] = status
        self.record["config"]["machine"]["pid"] = os.getpid()
        self.store.save(self.record)
        self.stored = status

    # ------------------------------------------------------------------ finishing
    def _stop(self, exc: BaseException, started: float) -> None:
        """Mark the run interrupted (a stop signal) or failed (anything else), and put what
        became of it on `exc.outcome`, for the one line the CLI prints."""
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        # a second stop signal while the first is handled is dropped: this run is ending anyway
        with contextlib.suppress(KeyboardInterrupt), interrupts.deferred():
            exc.outcome = self._finish_and_say(status, started)

    def _complete(self, started: float) -> dict:
        """Mark the run complete. A stop signal meanwhile waits until the record is written whole."""
        try:
            with interrupts.deferred():
                return self._finish("complete", started)
        except BaseException as exc:
            exc.outcome = (
                f"run {self.run_id} is complete and stored"
                if self.stored == "complete"
                else f"run {self.run_id} has all its samples stored but could not be marked "
                "complete: --resume completes it once that is fixed"
            )
            raise

    def _finish_and_say(self, status: str, started: float) -> str:
        try:
            self._finish(status, started)
        except BenchkitError as exc:
            return (
                f"run {self.run_id} could not be marked {status} either ({exc}); its finished "
                "samples are kept: continue with --resume once that is fixed"
            )
        res = self.record["results"]
        return (
            f"run {self.run_id} marked {status} with {res['samples_done']} of "
            f"{res['samples_expected']} samples stored; continue with --resume"
        )

    def _finish(self, status: str, started: float) -> dict:
        elapsed = self.record["results"].get("time_taken", 0.0) + time.monotonic() - started
        records = _latest_per_sample(self.store.samples(self.run_id))
        self.record["results"] = scoring.summarize(
            records, self.problems, self.config.num_samples
        ) | self.benchmark.summarize(records)
        self.record["results"]["time_taken"] = round(elapsed, 3)
        self.record["results"]["samples_done"] = len(records)
        self.record["results"]["samples_expected"] = len(self.problems) * self.config.num_samples
        self._mark(status)
        return self.record


def _latest_per_sample(records: list[dict]) -> list[dict]:
    return list({(r["task_id"], r["sample"]): r for r in records}.values())


def _config_of(record: dict, current: RunConfig) -> RunConfig:
    """The settings of a stored run, so a resumed run generates exactly what the first one would;
    where and how it runs (the settings outside the run's identity) are today's."""
    stored = {k: v for k, v in record["config"]["settings"].items() if k in RunConfig.model_fields}
    today = {name: getattr(current, name) for name in fields(identity=False)}
    return RunConfig(**stored | today)


def _find_resumable(store: ResultsStore, config: RunConfig, resume) -> dict:
    if isinstance(resume, str):
        record = store.get(resume)
        if record.get("status") == "complete":
            raise StoreError(f"run {resume} is already complete; nothing to resume")
    else:
        wanted = identity(config)
        candidates = [
            r
            for r in store.runs()
            if r.get("status") in ("queued", "running", "interrupted", "failed")
            and not _still_running(r)
            and identity_of_record(r) == wanted
        ]
        if not candidates:
            raise StoreError(
                "no unfinished run with these settings to resume; run without --resume, or give a "
                "run_id (see `benchkit runs`)",
                where=str(store.file),
            )
        record = candidates[-1]
    if _still_running(record):
        raise StoreError(
            f"run {record['run_id']} is still running (pid {record['config']['machine']['pid']})"
        )
    return record


def _still_running(record: dict) -> bool:
    machine = record["config"]["machine"]
    return record.get("status") == "running" and _alive(machine.get("pid"), machine.get("host"))


def identity(config: RunConfig) -> dict:
    """What decides the generated text: every setting, and which model file."""
    settings = config.identity()
    settings["timeout"] = time_limit(config)
    settings["model"] = str(Path(config.model or embedded_model_path()).expanduser().resolve())
    return settings


def identity_of_record(record: dict) -> dict | None:
    """The identity of a stored run; None for a run that stored no settings (the seed's)."""
    if not record["config"]["settings"]:
        return None
    try:
        return identity(_config_of(record, RunConfig()))
    except ValueError:  # settings this version no longer accepts (pydantic's ValidationError)
        return None


def _check_same_model(record: dict, model_info) -> None:
    stored = record["config"]["model"].get("sha256")
    if stored and stored != model_info.sha256:
        raise StoreError(
            f"run {record['run_id']} was made with a model of sha256 {stored[:12]}…, but "
            f"{model_info.path} now has {model_info.sha256[:12]}…; a resumed run must use the same file"
        )


def _alive(pid, host) -> bool:
    import socket

    if not pid or host != socket.gethostname() or pid == os.getpid():
        return False
    return process_alive(pid)
