"""A llama.cpp server whose whole life benchkit owns: start, health-check, watch, stop.

The server listens on a free port of 127.0.0.1, logs to `results/logs/<run_id>-server.log`,
and dies with benchkit on every exit path: `close()` on normal end, errors and Ctrl-C (the
runner's `finally`), an atexit hook, and SIGKILL from the kernel when benchkit itself is
killed (PR_SET_PDEATHSIG). Requests go through the OpenAI-compatible API.
"""

from __future__ import annotations

import atexit
import contextlib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from benchkit import runaway
from benchkit.backends.openai import OpenAIBackend
from benchkit.backends.server_build import find_llama_server
from benchkit.errors import ModelLoadError
from benchkit.sandbox import die_with_parent

LOG_TAIL_LINES = 15


class ServerDiedError(ModelLoadError):
    """The managed server stopped mid-run (crash, out of memory, killed)."""


class LlamaServerBackend(OpenAIBackend):
    def __init__(self, config, model_path, log_path=None):
        self.binary = find_llama_server(config.server_binary)
        self.port = config.server_port or _free_port()
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(suffix="-server.log")[1])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = self._start(config, model_path)
        atexit.register(self.close)
        config = config.model_copy(update={"base_url": f"http://127.0.0.1:{self.port}"})
        super().__init__(config)
        self._wait_healthy(config.server_start_timeout)

    def _start(self, config, model_path) -> subprocess.Popen:
        command = [
            str(self.binary),
            "-m",
            str(model_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-ngl",
            str(config.gpu_layers if config.gpu_layers >= 0 else 999),
            "-c",
            str(config.n_ctx * config.parallel),
            "-np",
            str(config.parallel),
            "-t",
            str(config.threads()),
            "--seed",
            str(config.seed),
            "--no-webui",
            "-ctk",
            config.cache_type_k,
            "-ctv",
            config.cache_type_v,
            "-fa",
            "on" if config.flash_attn else "off",
        ]
        self.command = command
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ModelLoadError(
                    f"llama-server exited with status {self.process.returncode} while starting"
                    f"{self._port_hint()}\n{self.log_tail()}",
                    where=str(self.log_path),
                )
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        self.close()
        raise ModelLoadError(
            f"llama-server was not healthy after {timeout:g} s\n{self.log_tail()}", where=str(self.log_path)
        )

    def _port_hint(self) -> str:
        text = self.log_path.read_text(errors="replace")
        return f" (port {self.port} is in use)" if "bind" in text.lower() and "port" in text.lower() else ""

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ServerDiedError(
                f"llama-server died mid-run (exit status {self.process.returncode}); finished samples "
                f"are stored, continue with --resume once the cause is fixed\n{self.log_tail()}",
                where=str(self.log_path),
            )

    def generate(self, prompt, sampling):
        self.check_alive()
        return super().generate(prompt, sampling)

    def _no_answer(self, path: str) -> ModelLoadError:
        return ModelLoadError(
            f"llama-server (pid {self.process.pid}) did not answer {self._url(path)} within "
            f"{self.config.request_timeout:g} s (request_timeout): stopped, hung or overloaded; finished "
            f"samples are stored, continue with --resume\n{self.log_tail()}",
            where=str(self.log_path),
        )

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "last lines of the server log:\n" + "\n".join(lines[-LOG_TAIL_LINES:])

    def describe(self) -> dict:
        return {
            **runaway.describe(self.config),
            "server_binary": str(self.binary),
            "server_command": self.command,
            "server_pid": self.process.pid,
            "server_log": str(self.log_path),
            "parallel": self.config.parallel,
            "batched_decoding_reproducible": self.config.parallel == 1,
        }

    def close(self) -> None:
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if hasattr(self, "client"):
            super().close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
