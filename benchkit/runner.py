"""One benchmark run: generate every sample, grade it while the next one generates, store it.

A run is resumable at any point: each finished sample is a durable line in
`samples/<run_id>.jsonl`, and `--resume` generates only the samples that have none.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path

from benchkit import grading, scoring
from benchkit.backends import open_backend
from benchkit.benchmarks import get_benchmark, time_limit
from benchkit.config import RunConfig
from benchkit.environment import describe_machine
from benchkit.errors import ConfigError, GenerationError, SandboxError, StoreError
from benchkit.model_file import ModelInfo, embedded_model_path, inspect_model
from benchkit.sandbox import Sandbox
from benchkit.selfcheck import selfcheck
from benchkit.store import ResultsStore


def run(config: RunConfig, resume: str | bool | None = None, progress: bool = True) -> dict:
    """Run (or resume) a benchmark and return its stored record.

    `resume`: a run_id, or True for the latest unfinished run with the same settings.
    Ctrl-C marks the run interrupted and re-raises KeyboardInterrupt; any other error marks
    it failed. Either way every finished sample is kept and `resume` continues from there.
    """
    store = ResultsStore(config.results_dir)
    if resume:
        record = _find_resumable(store, config, resume)
        config = _config_of(record, config)
    model_info = _model_info(config)
    benchmark = get_benchmark(config.benchmark, config)
    if config.prompt_style == "chat" and not model_info.has_chat_template:
        raise ConfigError(
            f"{model_info.path} has no chat template (a base model?); use prompt_style completion",
            where="prompt_style",
        )
    if not resume:
        record = _new_record(config, model_info)
    _check_same_model(record, model_info)
    problems = benchmark.problems()[: config.limit]
    return _Execution(config, benchmark, problems, store, record).go(progress)


def _model_info(config: RunConfig) -> ModelInfo:
    """The GGUF file's facts; for a remote endpoint without a local file, what the URL says."""
    if config.backend == "openai" and config.model is None:
        name = config.model_name or "default"
        return ModelInfo(path=f"{config.base_url}#{name}", name=name, architecture="unknown",
                         quant="unknown", context_length=None, has_chat_template=True, size=0, sha256="")
    return inspect_model(config.model or embedded_model_path())


class _Execution:
    def __init__(self, config, benchmark, problems, store, record):
        self.config, self.benchmark, self.problems = config, benchmark, problems
        self.store, self.record = store, record
        self.run_id = record["run_id"]
        self.errors: list[BaseException] = []
        self.graded = self.passed = self.tokens = 0
        self.gen_seconds = 0.0
        self.lock = threading.Lock()

    def go(self, progress: bool) -> dict:
        done = {(r["task_id"], r["sample"]) for r in self.store.samples(self.run_id)}
        todo = [(p, i) for p in self.problems for i in range(self.config.num_samples)
                if (p.task_id, i) not in done]
        started = time.monotonic()
        self._mark("running")
        try:
            with Sandbox(self.config.grade_workers) as sandbox, \
                    self.store.sample_log(self.run_id) as log:
                self._selfcheck(sandbox)
                self._generate(todo, sandbox, log, progress, len(done))
        except KeyboardInterrupt:
            self._finish("interrupted", started)
            raise
        except BaseException:
            self._finish("failed", started)
            raise
        return self._finish("complete", started)

    def _selfcheck(self, sandbox) -> None:
        """Refuse to score with a sandbox that passes bad programs or fails good ones."""
        check = selfcheck(sandbox, time_limit(self.config), self.config.memory_mb)
        self.record["config"]["isolation"] = sandbox.isolation
        self.record["config"]["time_limit_s"] = time_limit(self.config)
        self.record["config"]["data"] = self.benchmark.describe()
        self.record["config"]["selfcheck"] = check.as_config()
        if not check.ok:
            raise SandboxError("grading self-check failed: " + "; ".join(check.problems[:5]))

    def _generate(self, todo, sandbox, log, progress, already_done) -> None:
        from tqdm.auto import tqdm

        server_log = self.store.dir / "logs" / f"{self.run_id}-server.log"
        backend = open_backend(self.config.backend, self.config, self.record["config"]["path"],
                               log_path=server_log)
        try:
            self.record["config"].update(backend.describe())
            self._mark("running")
            bar = tqdm(total=len(todo) + already_done, initial=already_done, disable=not progress,
                       desc=f"{self.config.benchmark} {self.record['model']}", unit="sample")
            recorded = self._generate_all(todo, backend, sandbox, log, bar)
            wait(recorded)
            self._raise_stored_error()
            bar.close()
        finally:
            backend.close()

    def _generate_all(self, todo, backend, sandbox, log, bar) -> list[Future]:
        """One request at a time, or `parallel` at once against as many server slots."""
        if self.config.parallel == 1:
            recorded = []
            for problem, index in todo:
                self._raise_stored_error()
                recorded.append(self._sample(problem, index, backend, sandbox, log, bar))
            return recorded
        pool = ThreadPoolExecutor(self.config.parallel, thread_name_prefix="generate")
        try:
            generated = [pool.submit(self._sample, p, i, backend, sandbox, log, bar) for p, i in todo]
            recorded = [future.result() for future in generated]  # the first error stops the run
        except BaseException:  # Ctrl-C or a dead server: drop queued samples, don't wait on requests
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return recorded

    def _sample(self, problem, index, backend, sandbox, log, bar):
        style = self.config.prompt_style
        prompt = self.benchmark.prompt(problem, style)
        row = {"task_id": problem.task_id, "sample": index, "prompt": prompt}
        try:
            gen = backend.generate(prompt, self.config.sampling(index, self.benchmark.stop(style)))
        except GenerationError as exc:
            row.update(output="", completion=None, program=None, tokens=0, gen_seconds=0.0,
                       finish_reason="error", passed=False, result=f"failed: {exc}",
                       category="generation_error", grade_seconds=0.0)
            self._record(row, log, bar)
            return grading.submit(sandbox, None)  # an already finished future
        completion = self.benchmark.completion(problem, gen.text, style)
        job = None if completion is None else self.benchmark.job(
            problem, completion, time_limit(self.config), self.config.memory_mb)
        row.update(output=gen.text, completion=completion, program=job and job.source,
                   tokens=gen.tokens, gen_seconds=round(gen.seconds, 4),
                   finish_reason=gen.finish_reason, prompt_seconds=gen.prompt_seconds,
                   **({"loop": gen.loop} if gen.loop else {}))
        recorded: Future = Future()
        grading.submit(sandbox, job).add_done_callback(
            lambda f: self._graded(row, f, log, bar, recorded))
        return recorded

    def _graded(self, row, future, log, bar, recorded) -> None:
        try:
            outcome = future.result()
            row.update(grading.verdict(outcome, row["finish_reason"]),
                       grade_seconds=outcome.seconds if outcome else 0.0)
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
            bar.set_postfix(passed=f"{100 * self.passed / self.graded:.1f}%",
                            tok_s=f"{self.tokens / max(self.gen_seconds, 1e-9):.1f}", refresh=False)
            bar.update(1)

    def _raise_stored_error(self) -> None:
        if self.errors:
            raise self.errors[0]

    def _mark(self, status: str) -> None:
        self.record["status"] = status
        self.record["config"]["pid"] = os.getpid()
        self.store.save(self.record)

    def _finish(self, status: str, started: float) -> dict:
        elapsed = self.record["results"].get("time_taken", 0.0) + time.monotonic() - started
        records = _latest_per_sample(self.store.samples(self.run_id))
        self.record["results"] = scoring.summarize(records, self.problems, self.config.num_samples)
        self.record["results"]["time_taken"] = round(elapsed, 3)
        self.record["results"]["samples_done"] = len(records)
        self.record["results"]["samples_expected"] = len(self.problems) * self.config.num_samples
        self._mark(status)
        return self.record


def _latest_per_sample(records: list[dict]) -> list[dict]:
    return list({(r["task_id"], r["sample"]): r for r in records}.values())


def _new_record(config: RunConfig, model_info) -> dict:
    now = datetime.now(timezone.utc)
    return {
        "run_id": f"{now:%Y%m%d-%H%M%S}-{config.benchmark}-{secrets.token_hex(3)}",
        "timestamp": now.isoformat(timespec="seconds"),
        "benchmark": config.benchmark,
        "model": model_info.name if model_info.size == 0 else Path(model_info.path).stem,
        "status": "running",
        "config": _flat_config(config, model_info),
        "results": {},
    }


def _flat_config(config: RunConfig, model_info) -> dict:
    """Settings, model facts and machine facts side by side; the settings win any name clash,
    because a resumed run is rebuilt from them."""
    settings = config.model_dump(mode="json", exclude={"model", "results_dir"})
    model = {f"model_{k}": v for k, v in model_info.as_config().items() if k != "path"}
    return {**describe_machine(), "path": model_info.path, **model, **settings}


def _config_of(record: dict, current: RunConfig) -> RunConfig:
    """The settings of a stored run, so a resumed run generates exactly what the first one would."""
    stored = record["config"]
    fields = {k: stored[k] for k in RunConfig.model_fields if k in stored and k != "model"}
    fields["model"] = stored["path"] if stored.get("model_size") else None  # None: a remote model
    fields.setdefault("stop_runaway", False)  # a run stored before the loop rule existed ran without it
    for key in ("results_dir", "grade_workers", "n_threads", "request_timeout", "server_binary",
                "server_port", "server_start_timeout"):  # where and how, not what: today's values
        fields[key] = getattr(current, key)
    return RunConfig(**fields)


def _find_resumable(store: ResultsStore, config: RunConfig, resume) -> dict:
    if isinstance(resume, str):
        record = store.get(resume)
        if record.get("status") == "complete":
            raise StoreError(f"run {resume} is already complete; nothing to resume")
    else:
        wanted = _identity(config)
        candidates = [r for r in store.runs()
                      if r.get("status") in ("running", "interrupted", "failed")
                      and not _still_running(r) and _identity_of_record(r) == wanted]
        if not candidates:
            raise StoreError(
                "no unfinished run with these settings to resume; run without --resume, or give a "
                "run_id (see `benchkit runs`)", where=str(store.file))
        record = candidates[-1]
    if _still_running(record):
        raise StoreError(f"run {record['run_id']} is still running (pid {record['config']['pid']})")
    return record


def _still_running(record: dict) -> bool:
    config = record.get("config") or {}
    return record.get("status") == "running" and _alive(config.get("pid"), config.get("host"))


def _identity(config: RunConfig) -> dict:
    """What decides the generated text: every setting, and which model file."""
    identity = config.identity()
    identity["timeout"] = time_limit(config)
    identity["model"] = str(Path(config.model or embedded_model_path()).expanduser().resolve())
    return identity


def _identity_of_record(record: dict) -> dict | None:
    try:
        return _identity(_config_of(record, RunConfig()))
    except Exception:  # a seed-format or hand-edited run: never a resume candidate
        return None


def _check_same_model(record: dict, model_info) -> None:
    stored = record["config"].get("model_sha256")
    if stored and stored != model_info.sha256:
        raise StoreError(
            f"run {record['run_id']} was made with a model of sha256 {stored[:12]}…, but "
            f"{model_info.path} now has {model_info.sha256[:12]}…; a resumed run must use the same file")


def _alive(pid, host) -> bool:
    import socket

    if not pid or host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
