"""llama-cpp-python in process: the model lives in this Python process (and its GPU memory)."""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import gc
import os
import tempfile
import time

import numpy as np

from benchkit import runaway
from benchkit.backends import chat_format
from benchkit.backends.base import Generation
from benchkit.backends.chat_format import PromptTokens
from benchkit.errors import ConfigError, GenerationError, ModelLoadError
from benchkit.model_file import MappedModelGuard
from benchkit.runaway import LoopDetector

try:
    import llama_cpp
except ImportError:
    llama_cpp = None


class LlamaCppBackend:
    def __init__(self, config, model_path, log_path=None):
        if llama_cpp is None:
            raise ModelLoadError("llama-cpp-python is not installed; see the README's install step")
        if config.parallel != 1:
            raise ConfigError(
                "the in-process llama_cpp backend generates one sample at a time; "
                "use --backend llama_server for --parallel",
                where="parallel",
            )
        self.config = config
        self.rule = runaway.rule_of(config)
        self.pieces: dict[int, bytes] = {}  # token -> its text, as create_completion detokenises it
        self.last_prompt: tuple[list[int], np.ndarray] | None = None  # tokens, logits after them
        self.model_path = str(model_path)
        self.guard = MappedModelGuard(self.model_path)  # opened before llama.cpp maps it
        with tempfile.TemporaryFile("w+") as log, _stderr_to(log):
            try:
                self.llm = llama_cpp.Llama(
                    model_path=self.model_path,
                    n_gpu_layers=config.gpu_layers,
                    n_ctx=config.n_ctx,
                    n_threads=config.threads(),
                    n_threads_batch=config.threads(),
                    seed=config.seed,
                    type_k=_ggml_type(config.cache_type_k),
                    type_v=_ggml_type(config.cache_type_v),
                    flash_attn=config.flash_attn,
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
        self.vocab = self.llm._model.vocab

    def generate(self, prompt, sampling) -> Generation:
        self.guard.check()  # a truncated or rewritten model file: stop, named, before reading it
        detector = LoopDetector(self.rule) if self.rule else None
        started = time.perf_counter()
        try:
            if isinstance(prompt, str):
                return self._complete(prompt, sampling, detector, started)
            return self._chat(prompt, sampling, detector, started)
        except ValueError as exc:  # e.g. prompt longer than the context window
            raise GenerationError(str(exc)) from None

    def _complete(self, prompt: str, sampling, detector, started: float) -> Generation:
        """llama-cpp-python's create_completion, token for token."""
        prompt_tokens = PromptTokens(_prompt_tokens(self.llm, prompt), sampling.stop)
        return self._generate(prompt_tokens, sampling, detector, started)

    def _generate(self, prompt: PromptTokens, sampling, detector, started: float) -> Generation:
        """create_completion on prompt tokens, token for token (same sampler chain, stop rule
        and counts), without its per-token re-detokenisation of the whole answer; each token's
        text goes to the loop detector as it is made."""
        llm, tokens = self.llm, prompt.tokens
        if len(tokens) >= llm.n_ctx():
            raise ValueError(f"Requested tokens ({len(tokens)}) exceed context window of {llm.n_ctx()}")
        max_tokens = min(sampling.max_tokens, llm.n_ctx() - len(tokens))
        self._prefill(tokens)
        llm.set_seed(sampling.seed)
        sampler = llm._init_sampler(  # the chain create_completion builds, same order and seed
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            typical_p=1.0,
            temp=sampling.temperature,
            repeat_penalty=sampling.repeat_penalty,
            frequency_penalty=0.0,
            presence_penalty=0.0,
            mirostat_mode=0,
        )
        prompt_seconds = round(time.perf_counter() - started, 4)
        answer = _Answer(prompt.stop, detector)
        count, finish, evaluated = 0, None, tokens[-1] if tokens else None
        while finish is None:
            if evaluated in prompt.stop_after:  # generate() ends before yielding; the call: "stop"
                finish = "stop"
                break
            token = sampler.sample(llm._ctx, -1)
            if llama_cpp.llama_vocab_is_eog(self.vocab, token):
                finish = "stop"
                break
            count += 1
            finish = answer.add(self._piece(token))
            if finish == "defer":  # an unfinished UTF-8 character: create_completion checks nothing
                finish = None
            elif finish is None and count >= max_tokens:
                finish = "length"
            if finish is None:
                self._decode(token)
                evaluated = token
        return Generation(
            text=answer.text(finish),
            tokens=count,
            finish_reason=finish,
            seconds=time.perf_counter() - started,
            loop=answer.why(finish),
            prompt_seconds=prompt_seconds,
        )

    def _prefill(self, tokens: list[int]) -> None:
        """Evaluate the prompt, once per problem: when it is the prompt evaluated last (the
        next sample of the same problem), its KV cache is kept, what came after it dropped,
        and its logits put back where the sampler reads them, so each sample's text is what
        a fresh evaluation gives. A different prompt starts from an empty cache."""
        llm, n = self.llm, len(tokens)
        last = self.last_prompt
        if (
            last is not None
            and last[0] == tokens
            and llm.n_tokens >= n
            and llm._ctx.kv_cache_seq_rm(-1, n, -1)
        ):
            llm.n_tokens = n
            ctypes.memmove(llm._ctx.get_logits_ith(-1), last[1].ctypes.data, last[1].nbytes)
            return
        self.last_prompt = None
        llm.reset()
        llm.eval(tokens)
        logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
        self.last_prompt = (tokens, logits.copy())

    def _decode(self, token: int) -> None:
        """Llama.eval([token]) without its first step, which has the KV cache drop every cell
        past n_tokens: between two tokens of this loop nothing lies there, and the call cost
        ~1 ms a token (a 200-token microbenchmark: 65-69 tok/s through eval, 73 direct; 0.87x
        -> 0.90x of llama-bench over a run). Same batch, same decode, same logits."""
        llm = self.llm
        n_past = llm.n_tokens
        llm._batch.set_batch(batch=[token], n_past=n_past, logits_all=False)
        llm._ctx.decode(llm._batch)
        llm.input_ids[n_past] = token
        llm.n_tokens = n_past + 1

    def _piece(self, token: int) -> bytes:
        piece = self.pieces.get(token)
        if piece is None:
            piece = self.pieces[token] = self.llm._model.detokenize([token])
        return piece

    def _chat(self, messages, sampling, detector, started: float) -> Generation:
        """create_chat_completion, token for token: the prompt its handler makes of the messages
        (benchkit.backends.chat_format), then the same loop as a completion prompt."""
        prompt = chat_format.chat_prompt(self.llm, messages, sampling.stop)
        if prompt is None:  # a handler chat_format cannot follow exactly
            return self._chat_completion(messages, sampling, detector, started)
        return self._generate(prompt, sampling, detector, started)

    def _chat_completion(self, messages, sampling, detector, started: float) -> Generation:
        """Through llama-cpp-python's create_chat_completion; streamed (and stopped) when the
        rule is on: its slow per-token path."""
        params = completion_params(sampling)
        self.llm.reset()
        self.last_prompt = None
        if detector is None:
            reply = self.llm.create_chat_completion(messages=messages, **params)
            return Generation(
                text=reply["choices"][0]["message"]["content"] or "",
                tokens=reply["usage"]["completion_tokens"],
                finish_reason=reply["choices"][0]["finish_reason"] or "stop",
                seconds=time.perf_counter() - started,
            )
        text, finish, loop, first = "", "stop", None, None
        chunks = self.llm.create_chat_completion(messages=messages, stream=True, **params)
        for chunk in chunks:
            choice = chunk["choices"][0]
            first = self.llm.n_tokens if first is None else first
            piece = choice["delta"].get("content") or ""
            text += piece
            loop = detector.feed(piece)
            finish = choice.get("finish_reason") or finish
            if loop is not None:
                chunks.close()  # stops the generation: no further token is made
                text, finish = text[: loop.end], "loop"
                break
        tokens = self.llm.n_tokens - (first or self.llm.n_tokens) + (1 if text else 0)
        return Generation(
            text=text,
            tokens=tokens,
            finish_reason=finish,
            seconds=time.perf_counter() - started,
            loop=loop and loop.detail,
        )

    def describe(self) -> dict:
        return {
            **runaway.describe(self.config),
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
        self.last_prompt = None  # the logits kept for the next sample of the same prompt
        _return_freed_memory()


def completion_params(sampling) -> dict:
    """A sample's settings as llama-cpp-python's create_completion / create_chat_completion take
    them: every one explicit, the samplers benchkit has no setting for off."""
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
        stop=sampling.stop or None,
    )


def _prompt_tokens(llm, prompt: str) -> list[int]:
    """The tokens create_completion makes of a text prompt: BOS (or CLS), the text with special
    tokens parsed, and EOS (or SEP) where the model's tokenizer adds one."""
    model = llm._model
    cls, sep = model.token_cls(), model.token_sep()
    bos = [cls if cls != -1 else llm.token_bos()]
    eos = [sep if sep != -1 else llm.token_eos()]
    if not model.add_bos_token() or bos[:1] == [-1]:
        bos = []
    if not model.add_eos_token() and sep == -1:
        eos = []
    return bos + (llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) if prompt else []) + eos


class _Answer:
    """An answer's bytes as its tokens arrive, ended as create_completion ends it: at the first
    stop sequence (checked only once no UTF-8 character is left unfinished), and by the loop
    detector, which sees the decoded text as it grows."""

    def __init__(self, stops: list[str], detector):
        self.data = bytearray()
        self.stops = [s.encode("utf-8") for s in stops]
        self.longest = max(map(len, self.stops), default=0)
        self.checked = 0  # bytes already searched for stop sequences
        self.multibyte_fix = 0
        self.detector, self.loop = detector, None
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")

    def add(self, piece: bytes) -> str | None:
        """None to go on; "defer" (go on, nothing checked), "stop" or "loop" to end."""
        self.data += piece
        if self.detector is not None and self.loop is None:
            self.loop = self.detector.feed(self.decoder.decode(piece))
        for k, char in enumerate(self.data[-3:]):  # create_completion's multibyte check, as it is
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    self.multibyte_fix = num - k
        if self.multibyte_fix > 0:
            self.multibyte_fix -= 1
            return "defer"
        if self._stop_sequence():
            return "stop"
        return "loop" if self.loop is not None else None

    def _stop_sequence(self) -> bool:
        start = max(0, self.checked - self.longest + 1)
        self.checked = len(self.data)
        found = [s for s in self.stops if self.data.find(s, start) != -1]
        if found:
            del self.data[self.data.find(found[0]) :]
        return bool(found)

    def text(self, finish: str) -> str:
        text = self.data.decode("utf-8", errors="ignore")
        return text[: self.loop.end] if finish == "loop" else text

    def why(self, finish: str) -> str | None:
        return f"{self.loop.reason}: {self.loop.detail}" if finish == "loop" else None


def _return_freed_memory() -> None:
    """Give the heap that the model's context freed back to the system (glibc keeps it
    otherwise), so a sweep's next model starts from the same memory as this one did."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _ggml_type(name: str) -> int:
    """A KV cache type by llama.cpp's name (f16, q8_0, …), as llama-cpp-python takes it."""
    return getattr(llama_cpp, f"GGML_TYPE_{name.upper()}")


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
