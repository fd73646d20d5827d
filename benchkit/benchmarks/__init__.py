"""Benchmarks by name. A benchmark is a dataset, a prompt and a check (see `base.Benchmark`): one
module here, its entry below, and its harness in the sandbox worker's `HARNESSES`."""

from __future__ import annotations

from benchkit.registry import resolve

BENCHMARKS = {
    "human_eval": "benchkit.benchmarks.human_eval:HumanEval",
    "lcb": "benchkit.benchmarks.lcb:LiveCodeBench",
}


def benchmark_class(name: str):
    return resolve(BENCHMARKS, name, "benchmark")


def benchmark_settings() -> list[type]:
    """Each registered benchmark's own settings model (`Benchmark.settings`), in registry order:
    RunConfig is made of them and the shared settings."""
    found = (benchmark_class(name).settings for name in BENCHMARKS)
    return list(dict.fromkeys(settings for settings in found if settings is not None))


def get_benchmark(name: str, config=None):
    """The benchmark registered as `name`, set up from a RunConfig (data files, filters)."""
    return benchmark_class(name)(config)


def time_limit(config) -> float:
    """Seconds per program (per test for LiveCodeBench): the config's, or the benchmark's own."""
    return config.timeout or benchmark_class(config.benchmark).default_timeout
