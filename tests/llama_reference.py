"""llama-cpp-python's own entry points with benchkit's sampling: what the in-process backend must
generate, token for token (text, completion tokens, finish reason), each on a fresh context."""

import contextlib

from benchkit.backends.llama_cpp import LlamaCppBackend, completion_params
from benchkit.config import RunConfig, Sampling


@contextlib.contextmanager
def with_and_without_rule(model):
    """The in-process backend on `model`, by loop rule (True: on, False: off). One thread: on a
    shared machine two spinning threads crawl, and the count does not change the text."""
    backends = {
        rule: LlamaCppBackend(RunConfig(stop_runaway=rule, n_threads=1), model) for rule in (True, False)
    }
    try:
        yield backends
    finally:
        for backend in backends.values():
            backend.close()


def completion(llm, prompt: str, sampling: Sampling) -> tuple[str, int, str]:
    reply = llm.create_completion(prompt, **_params(llm, sampling))
    choice = reply["choices"][0]
    return choice["text"], reply["usage"]["completion_tokens"], choice["finish_reason"]


def chat_completion(llm, messages: list[dict], sampling: Sampling) -> tuple[str, int, str]:
    reply = llm.create_chat_completion(messages=messages, **_params(llm, sampling))
    choice = reply["choices"][0]
    return choice["message"]["content"], reply["usage"]["completion_tokens"], choice["finish_reason"]


def _params(llm, sampling: Sampling) -> dict:
    llm.reset()
    return completion_params(sampling)
