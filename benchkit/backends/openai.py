"""Any OpenAI-compatible endpoint (llama-server, llama-cpp-python's server, vLLM, …) over HTTP.

Every sampling setting is sent in every request: servers' defaults differ from each other
and from the in-process ones. Transient failures (connection, 429, 5xx, an answer that is not
JSON, a stream cut short) are retried with backoff; a server silent for `request_timeout`,
authentication failures and unknown models stop the run with a named error. With the loop
rule on (the default), answers are streamed and a loop closes the request.
"""

from __future__ import annotations

import json
import os
import time

import httpx

from benchkit import runaway
from benchkit.backends.base import Generation
from benchkit.errors import ConfigError, GenerationError, ModelLoadError
from benchkit.runaway import LoopDetector

RETRIES = 4
TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAIBackend:
    def __init__(self, config, model_path=None, log_path=None):
        if not config.base_url:
            raise ConfigError(
                "the openai backend needs --base-url (e.g. http://127.0.0.1:8080)", where="base_url"
            )
        self.config = config
        self.rule = runaway.rule_of(config)
        self.model_name = config.model_name or "default"
        key = os.environ.get("BENCHKIT_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.client = httpx.Client(
            base_url=config.base_url.rstrip("/").removesuffix("/v1"),
            timeout=config.request_timeout,
            headers={"Authorization": f"Bearer {key}"} if key else {},
        )

    def generate(self, prompt, sampling) -> Generation:
        chat = not isinstance(prompt, str)
        path = "/v1/chat/completions" if chat else "/v1/completions"
        body = {
            "model": self.model_name,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            # greedy is the top token whatever the filters; top_k 1 says so, and spares llama.cpp's
            # sampler a pass over the whole vocabulary (262k for Gemma 3) for every token
            "top_k": 1 if sampling.temperature == 0 else sampling.top_k,
            "min_p": sampling.min_p,
            "repeat_penalty": sampling.repeat_penalty,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
            "seed": sampling.seed,
            "stop": sampling.stop or None,
            **({"messages": prompt} if chat else {"prompt": prompt}),
        }
        started = time.perf_counter()
        if self.rule is None:  # one plain request, as before the loop rule existed
            reply = self._retrying(path, lambda: self._post_once(path, body))
            return _generation(reply, chat, started)
        body.update(stream=True, stream_options={"include_usage": True})
        return self._retrying(path, lambda: self._stream_once(path, body, chat, started))

    def _retrying(self, path: str, request):
        """`request()`, again with backoff while it fails in a way that may pass (connection,
        429/5xx, an answer that is not JSON, a stream cut short); then a named error."""
        delay = 0.5
        for attempt in range(RETRIES + 1):
            try:
                return request()
            except httpx.TimeoutException:
                raise self._no_answer(path) from None
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                failure = f"the connection broke mid-answer ({exc})"
            except httpx.TransportError as exc:
                failure = f"cannot reach the server ({exc})"
            except _Transient as exc:
                failure = str(exc)
            self.check_alive()
            if attempt == RETRIES:
                raise ModelLoadError(
                    f"{failure}; gave up after {RETRIES + 1} attempts", where=self._url(path)
                )
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _post_once(self, path: str, body: dict) -> dict:
        response = self.client.post(path, json=body)
        self._check_status(response, path)
        try:
            reply = response.json()
            reply["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Transient(
                f"the server answered something that is not a completion: {response.text[:200]!r}"
            ) from None
        return reply

    def _stream_once(self, path: str, body: dict, chat: bool, started: float) -> Generation:
        """A streamed request: each piece of text goes to the loop detector as it arrives, and
        a loop ends the request, so the server makes no further token.

        The prompt's time is the server's own (`timings.prompt_ms`, in llama-server's last
        event) where the stream carries it; else (a loop closed the stream before that event,
        or a server that sends no timings) the time to the first piece of text, which is the
        prompt's evaluation plus one sampling and the request's round trip. Without it a
        loop-stopped answer's prompt time would count as decoding."""
        detector = LoopDetector(self.rule)
        text, pieces, finish, usage, timings, first = "", 0, None, None, None, None
        with self.client.stream("POST", path, json=body) as response:
            if response.status_code >= 400:
                response.read()
                self._check_status(response, path)
            for chunk in _events(response):
                usage = chunk.get("usage") or usage
                timings = chunk.get("timings") or timings
                choice = (chunk.get("choices") or [{}])[0]
                piece = ((choice.get("delta") or {}).get("content") if chat else choice.get("text")) or ""
                finish = choice.get("finish_reason") or finish
                if piece:
                    if first is None:
                        first = round(time.perf_counter() - started, 4)
                    text, pieces = text + piece, pieces + 1
                    loop = detector.feed(piece)
                    if loop is not None:  # leaving the block closes the connection: the server stops
                        return Generation(
                            text[: loop.end],
                            pieces,
                            "loop",
                            time.perf_counter() - started,
                            loop=f"{loop.reason}: {loop.detail}",
                            prompt_seconds=first,
                        )
        if finish is None:
            raise _Transient("the stream ended before the answer did")
        tokens = int((usage or {}).get("completion_tokens") or pieces)
        prompt = _prompt_seconds(timings)
        return Generation(
            text,
            tokens,
            finish,
            time.perf_counter() - started,
            prompt_seconds=first if prompt is None else prompt,
        )

    def _check_status(self, response: httpx.Response, path: str) -> None:
        if response.status_code < 400:
            return
        if response.status_code in TRANSIENT_STATUS:
            raise _Transient(f"server error {response.status_code}: {response.text[:300]}")
        self._fail(response, path)

    def _no_answer(self, path: str) -> ModelLoadError:
        return ModelLoadError(
            f"the server did not answer within {self.config.request_timeout:g} s (request_timeout)",
            where=self._url(path),
        )

    def _fail(self, response: httpx.Response, path: str):
        detail = response.text[:500]
        where = self._url(path)
        if response.status_code in (401, 403):
            raise ModelLoadError(
                f"authentication failed ({response.status_code}): set BENCHKIT_API_KEY "
                f"or OPENAI_API_KEY; server said: {detail}",
                where=where,
            )
        if response.status_code == 404:
            raise ModelLoadError(
                f"unknown model {self.model_name!r} or endpoint (404): {detail}", where=where
            )
        if response.status_code == 400:  # this prompt is the problem (too long for the context…)
            raise GenerationError(f"the server refused this request (400): {detail}")
        raise ModelLoadError(f"server error {response.status_code}: {detail}", where=where)

    def _url(self, path: str) -> str:
        return f"{self.client.base_url}{path}"

    def check_alive(self) -> None:
        """A managed server raises here when its process has died."""

    def describe(self) -> dict:
        return {
            **runaway.describe(self.config),
            "base_url": str(self.client.base_url),
            "model_name": self.model_name,
        }

    def close(self) -> None:
        self.client.close()


class _Transient(Exception):
    """A failure worth another attempt."""


def _events(response: httpx.Response):
    """The JSON payloads of a server-sent-events stream, up to `[DONE]`."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            if line and not line.startswith((":", "event:", "id:", "retry:")):
                raise _Transient(f"the answer is not server-sent events: {line[:200]!r}")
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            raise _Transient(f"the stream carried something that is not JSON: {data[:200]!r}") from None
        if not isinstance(event, dict):
            raise _Transient(f"the stream carried something that is not an event: {data[:200]!r}")
        yield event


def _generation(reply: dict, chat: bool, started: float) -> Generation:
    choice = reply["choices"][0]
    text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
    return Generation(
        text=text or "",
        tokens=int((reply.get("usage") or {}).get("completion_tokens", 0)),
        finish_reason=choice.get("finish_reason") or "stop",
        seconds=time.perf_counter() - started,
        prompt_seconds=_prompt_seconds(reply.get("timings")),
    )


def _prompt_seconds(timings) -> float | None:
    """llama-server's own account of the prompt's evaluation (`timings.prompt_ms`), if sent."""
    try:
        return round(float(timings["prompt_ms"]) / 1000, 4)
    except (TypeError, KeyError, ValueError):
        return None
