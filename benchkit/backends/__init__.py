"""Generation backends by name; each is one module behind `base.Backend.generate()`."""

from __future__ import annotations

from benchkit.registry import resolve

BACKENDS = {
    "llama_cpp": "benchkit.backends.llama_cpp:LlamaCppBackend",
    "llama_server": "benchkit.backends.llama_server:LlamaServerBackend",
    "openai": "benchkit.backends.openai:OpenAIBackend",
    "scripted": "benchkit.backends.scripted:ScriptedBackend",
}


def open_backend(name: str, config, model_path, log_path=None):
    """Load the backend registered as `name` for this run; close it with `.close()`.
    `log_path`: where a backend that runs a server writes that server's log."""
    return resolve(BACKENDS, name, "backend")(config, model_path, log_path)
