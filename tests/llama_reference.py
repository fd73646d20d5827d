"""llama-cpp-python's own entry points with benchkit's sampling: what the in-process backend must
generate, token for token (text, completion tokens, finish reason), each on a fresh context."""

from benchkit.config import Sampling


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
    return dict(
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
        stop=sampling.stop,
    )
