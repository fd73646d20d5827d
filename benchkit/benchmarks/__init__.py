"""Benchmarks by name. A benchmark is a dataset, a prompt and a check (see `base.Benchmark`)."""

from __future__ import annotations

from importlib import import_module

from benchkit.errors import ConfigError

BENCHMARKS = {
    "human_eval": "benchkit.benchmarks.human_eval:HumanEval",
}


def get_benchmark(name: str, **options):
    """Instantiate the benchmark registered as `name`."""
    try:
        module, cls = BENCHMARKS[name].split(":")
    except KeyError:
        raise ConfigError(
            f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}", where="benchmark"
        ) from None
    return getattr(import_module(module), cls)(**options)
