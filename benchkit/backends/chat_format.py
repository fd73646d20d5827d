"""Chat messages made into a prompt exactly as llama-cpp-python's create_chat_completion makes
them: the handler it picks for the loaded model (the GGUF's chat template, or the format it
guessed or was given), the formatter inside that handler, and the handler's tokenisation, stop
strings and stop token. benchkit's own token loop (benchkit.backends.llama_cpp) then generates
what create_chat_completion generates, without its slow per-token path."""

from __future__ import annotations

from dataclasses import dataclass

try:
    from llama_cpp import llama_chat_format
except ImportError:
    llama_chat_format = None


@dataclass(frozen=True)
class PromptTokens:
    """A prompt as create_completion takes it from a text or a chat handler."""

    tokens: list[int]
    stop: list[str]  # stop strings: the sampling's, then a chat format's own (its end text)
    # a chat handler's stopping rule (Jinja2ChatFormatter's stop tokens): generation ends once
    # the last token *evaluated* (the prompt's last, then each answer token but the one just
    # sampled) is one of these, as llama-cpp-python's generate() checks it
    stop_after: frozenset[int] = frozenset()


def chat_prompt(llm, messages: list[dict], stop: list[str]) -> PromptTokens | None:
    """What create_chat_completion(messages, stop=stop) hands to create_completion; None where
    its handler is not one benchkit can follow exactly (see _formatter) or its formatter adds a
    stopping rule other than Jinja2ChatFormatter's stop tokens: the caller then goes through
    create_chat_completion itself."""
    formatter = _formatter(llm)
    if formatter is None:
        return None
    # the handler's call: no functions or tools (benchkit sends none), no other arguments
    result = formatter(messages=messages, functions=None, function_call=None, tools=None, tool_choice=None)
    stop_after = frozenset()
    if result.stopping_criteria is not None:
        ids = getattr(formatter, "stop_token_ids", None)
        if not isinstance(formatter, llama_chat_format.Jinja2ChatFormatter) or ids is None:
            return None  # an opaque stopping rule: nothing says what it looks at
        stop_after = frozenset(int(i) for i in ids)
    tokens = llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
    own = [] if result.stop is None else [result.stop] if isinstance(result.stop, str) else list(result.stop)
    return PromptTokens(tokens, list(stop) + own, stop_after)


def _formatter(llm):
    """The formatter inside the handler create_chat_completion picks, in its order (the Llama's
    own chat_handler, a template from the GGUF's metadata, a registered format by name), where
    that handler is llama-cpp-python's generic one (chat_formatter_to_chat_completion_handler),
    whose whole behaviour chat_prompt repeats. Any other handler (multimodal, function calling,
    a user's own) is followed by create_chat_completion itself: None."""
    if llama_chat_format is None:
        return None
    handler = llm.chat_handler or llm._chat_handlers.get(llm.chat_format)
    if handler is None:
        try:
            handler = llama_chat_format.get_chat_completion_handler(llm.chat_format)
        except llama_chat_format.LlamaChatCompletionHandlerNotFoundException:
            return None  # create_chat_completion raises the same error itself
    if getattr(handler, "__code__", None) is not _GENERIC_HANDLER:
        return None
    cells = dict(zip(handler.__code__.co_freevars, handler.__closure__ or ()))
    cell = cells.get("chat_formatter")
    return None if cell is None else cell.cell_contents


# the code object of every handler that chat_formatter_to_chat_completion_handler returns
_GENERIC_HANDLER = (
    llama_chat_format.chat_formatter_to_chat_completion_handler(None).__code__ if llama_chat_format else None
)
