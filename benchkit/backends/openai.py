"""Any OpenAI-compatible endpoint (llama-server, llama-cpp-python's server, vLLM, …) over HTTP.

Every sampling setting is sent in every request: servers' defaults differ from each other
and from the in-process ones. Transient failures (connection, 429, 5xx) are retried with
backoff; authentication failures and unknown models stop the run with a named error.
"""

from __future__ import annotations

import os
import time

import httpx

from benchkit.backends.base import Generation
from benchkit.errors import ConfigError, GenerationError, ModelLoadError

RETRIES = 4
TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAIBackend:
    def __init__(self, config, model_path=None, log_path=None):
        if not config.base_url:
            raise ConfigError("the openai backend needs --base-url (e.g. http://127.0.0.1:8080)",
                              where="base_url")
        self.config = config
        self.model_name = config.model_name or "default"
        key = os.environ.get("BENCHKIT_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.client = httpx.Client(
            base_url=config.base_url.rstrip("/").removesuffix("/v1"),
            timeout=config.request_timeout,
            headers={"Authorization": f"Bearer {key}"} if key else {},
        )

    def generate(self, prompt, sampling) -> Generation:
        body = {
            "model": self.model_name,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "min_p": sampling.min_p,
            "repeat_penalty": sampling.repeat_penalty,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
            "seed": sampling.seed,
            "stop": sampling.stop or None,
        }
        chat = not isinstance(prompt, str)
        body.update({"messages": prompt} if chat else {"prompt": prompt})
        started = time.perf_counter()
        reply = self._post("/v1/chat/completions" if chat else "/v1/completions", body)
        choice = reply["choices"][0]
        text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
        return Generation(
            text=text or "",
            tokens=int((reply.get("usage") or {}).get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason") or "stop",
            seconds=time.perf_counter() - started,
        )

    def _post(self, path: str, body: dict) -> dict:
        delay = 0.5
        for attempt in range(RETRIES + 1):
            try:
                response = self.client.post(path, json=body)
            except httpx.TransportError as exc:
                self.check_alive()
                if attempt == RETRIES:
                    raise ModelLoadError(f"cannot reach the server ({exc})", where=self._url(path)) from None
            else:
                if response.status_code < 400:
                    return response.json()
                if response.status_code not in TRANSIENT_STATUS or attempt == RETRIES:
                    self._fail(response, path)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _fail(self, response: httpx.Response, path: str):
        detail = response.text[:500]
        where = self._url(path)
        if response.status_code in (401, 403):
            raise ModelLoadError(f"authentication failed ({response.status_code}): set BENCHKIT_API_KEY "
                                 f"or OPENAI_API_KEY; server said: {detail}", where=where)
        if response.status_code == 404:
            raise ModelLoadError(f"unknown model {self.model_name!r} or endpoint (404): {detail}", where=where)
        if response.status_code == 400:  # this prompt is the problem (too long for the context…)
            raise GenerationError(f"the server refused this request (400): {detail}")
        raise ModelLoadError(f"server error {response.status_code}: {detail}", where=where)

    def _url(self, path: str) -> str:
        return f"{self.client.base_url}{path}"

    def check_alive(self) -> None:
        """A managed server raises here when its process has died."""

    def describe(self) -> dict:
        return {"base_url": str(self.client.base_url), "model_name": self.model_name}

    def close(self) -> None:
        self.client.close()
