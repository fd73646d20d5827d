"""The one error family benchkit raises on purpose.

Every error carries `where` (a file, ``file:line``, a config key, a task id) so a
user sees which input was wrong, as papermill's errors say which cell failed.
"""


class BenchkitError(Exception):
    """Base class: the CLI prints these without a traceback and exits non-zero."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(BenchkitError):
    """Bad settings: a CLI flag, a parameters YAML, a notebook parameter."""

    exit_code = 2


class ModelFileError(BenchkitError):
    """The model file is missing, unreadable, not GGUF or truncated."""


class ModelLoadError(BenchkitError):
    """The backend could not load or run the model."""


class DataError(BenchkitError):
    """Benchmark data or a samples file is malformed."""


class StoreError(BenchkitError):
    """The results store is unreadable, broken or cannot be written."""


class SandboxError(BenchkitError):
    """The sandbox itself failed (not the program it ran)."""


class GenerationError(BenchkitError):
    """One prompt could not be generated (too long for the context, for example): a failed row."""
