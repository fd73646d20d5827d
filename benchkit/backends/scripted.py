"""Replies from a script instead of a model: regrade stored outputs, or drive a run exactly.

`--backend scripted --script FILE`: FILE is JSONL, one reply per line, found by problem and
sample: `{"task_id", "sample" (default 0), "output"}` and optionally `finish_reason` ("stop"),
`tokens` (default: words in output), `pause_s` (sleep before replying), `wait_for` (a path:
reply only once it exists), `error` ("generation": this sample fails as a row; "fatal": the
run stops with ModelLoadError). A run's own `samples/<run_id>.jsonl` is a valid script, so a
stored run can be regraded under today's harness. A prompt the script has no reply for is a
failed row, never a guess.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from benchkit.backends.base import Generation
from benchkit.errors import ConfigError, GenerationError, ModelLoadError
from benchkit.store import jsonl_lines

WAIT_FOR_LIMIT_S = 600.0


class ScriptedBackend:
    def __init__(self, config, model_path=None, log_path=None):
        from benchkit.benchmarks import get_benchmark

        if config.script is None:
            raise ConfigError("the scripted backend needs --script FILE (JSONL of replies)", where="script")
        self.config = config
        benchmark = get_benchmark(config.benchmark, config)
        prompts = {p.task_id: _key(benchmark.prompt(p, config.prompt_style)) for p in benchmark.problems()}
        self.replies = {}
        for where, entry in _read(Path(config.script)):
            if entry["task_id"] in prompts:  # other benchmarks' or problems' lines are ignored
                self.replies[(prompts[entry["task_id"]], entry.get("sample", 0))] = (where, entry)
        self.closed = threading.Event()

    def generate(self, prompt, sampling) -> Generation:
        sample = sampling.seed - self.config.seed
        where, entry = self.replies.get((_key(prompt), sample), (None, None))
        if entry is None:
            raise GenerationError(f"{self.config.script} has no reply for this prompt, sample {sample}")
        started = time.perf_counter()
        _wait(entry, where, self.closed)
        if entry.get("error") == "fatal":
            raise ModelLoadError("scripted fatal error", where=where)
        if entry.get("error"):
            raise GenerationError(f"scripted generation error ({where})")
        output = entry["output"]
        return Generation(
            text=output,
            tokens=int(entry.get("tokens", len(output.split()))),
            finish_reason=entry.get("finish_reason", "stop"),
            seconds=time.perf_counter() - started,
        )

    def describe(self) -> dict:
        return {"script": str(self.config.script), "replies": len(self.replies)}

    def close(self) -> None:
        self.closed.set()


def _key(prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def _wait(entry: dict, where: str, closed: threading.Event) -> None:
    if entry.get("pause_s"):
        closed.wait(float(entry["pause_s"]))
    if entry.get("wait_for"):
        deadline = time.monotonic() + WAIT_FOR_LIMIT_S
        while not Path(entry["wait_for"]).exists():
            if time.monotonic() > deadline or closed.wait(0.01):
                raise GenerationError(f"waited {WAIT_FOR_LIMIT_S:g} s for {entry['wait_for']}", where=where)


def _read(path: Path):
    """(file:line, entry) for every line; a malformed line is a ConfigError naming it."""
    for where, entry in jsonl_lines(path, ConfigError, "the script"):
        if not isinstance(entry, dict) or not isinstance(entry.get("task_id"), str):
            raise ConfigError('expected an object with "task_id"', where=where)
        if not isinstance(entry.get("output", ""), str) and not entry.get("error"):
            raise ConfigError('"output" must be a string', where=where)
        if "output" not in entry and not entry.get("error"):
            raise ConfigError('expected "output" (or "error")', where=where)
        yield where, entry
