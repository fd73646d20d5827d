"""llama-cpp-python in process: the model lives in this Python process (and its GPU memory)."""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import time

from benchkit.backends.base import Generation
from benchkit.errors import ConfigError, GenerationError, ModelLoadError
from benchkit.model_file import MappedModelGuard


class LlamaCppBackend:
    def __init__(self, config, model_path, log_path=None):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelLoadError(
                f"llama-cpp-python is not installed ({exc}); see the README's install step"
            ) from None
        if config.parallel != 1:
            raise ConfigError("the in-process llama_cpp backend generates one sample at a time; "
                              "use --backend llama_server for --parallel", where="parallel")
        self.config = config
        self.model_path = str(model_path)
        self.guard = MappedModelGuard(self.model_path)  # opened before llama.cpp maps it
        with tempfile.TemporaryFile("w+") as log, _stderr_to(log):
            try:
                self.llm = Llama(
                    model_path=self.model_path,
                    n_gpu_layers=config.gpu_layers,
                    n_ctx=config.n_ctx,
                    n_threads=config.threads(),
                    n_threads_batch=config.threads(),
                    seed=config.seed,
                    verbose=False,
                )
            except BaseException as exc:
                self.guard.close()
                if not isinstance(exc, (ValueError, RuntimeError, OSError)):
                    raise
                log.seek(0)
                tail = "".join(log.readlines()[-8:]).strip()
                raise ModelLoadError(
                    f"llama.cpp could not load the model ({exc}); check the file, n_ctx "
                    f"({config.n_ctx}) and gpu_layers ({config.gpu_layers})"
                    + (f"\nllama.cpp said:\n{tail}" if tail else ""),
                    where=self.model_path,
                ) from None

    def generate(self, prompt, sampling) -> Generation:
        params = dict(
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            typical_p=1.0,
            repeat_penalty=sampling.repeat_penalty,
            frequency_penalty=0.0,
            presence_penalty=0.0,
            mirostat_mode=0,
            seed=sampling.seed,
            stop=sampling.stop or None,
        )
        self.guard.check()  # a truncated or rewritten model file: stop, named, before reading it
        self.llm.reset()  # no KV reuse across samples: each sample's text is independent of order
        started = time.perf_counter()
        try:
            if isinstance(prompt, str):
                reply = self.llm.create_completion(prompt, **params)
                text = reply["choices"][0]["text"]
            else:
                reply = self.llm.create_chat_completion(messages=prompt, **params)
                text = reply["choices"][0]["message"]["content"] or ""
        except ValueError as exc:  # e.g. prompt longer than the context window
            raise GenerationError(str(exc)) from None
        return Generation(
            text=text,
            tokens=reply["usage"]["completion_tokens"],
            finish_reason=reply["choices"][0]["finish_reason"] or "stop",
            seconds=time.perf_counter() - started,
        )

    def describe(self) -> dict:
        import llama_cpp

        return {
            "llama_cpp_python": llama_cpp.__version__,
            "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
            "system_info": llama_cpp.llama_print_system_info().decode().strip(),
        }

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.close()
            del llm
            gc.collect()
        guard, self.guard = getattr(self, "guard", None), None
        if guard is not None:
            guard.close()


@contextlib.contextmanager
def _stderr_to(log):
    """llama.cpp logs on fd 2 even with verbose=False: keep it out of notebooks, for errors."""
    saved = os.dup(2)
    try:
        os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
