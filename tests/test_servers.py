"""A real llama-server (built once from the llama-cpp-python sdist) and the OpenAI backend."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from benchkit.backends.llama_server import LlamaServerBackend
from benchkit.backends.openai import OpenAIBackend
from benchkit.backends.server_build import find_llama_server
from benchkit.config import RunConfig, Sampling
from benchkit.errors import ModelLoadError
from benchkit.store import ResultsStore
from tests.conftest import REPO, benchkit_cli

pytestmark = pytest.mark.slow
GREEDY = Sampling(temperature=0.0, max_tokens=16, stop=["\ndef "])
PROMPT = 'def add(a, b):\n    """Return the sum of a and b."""\n'


@pytest.fixture(scope="module")
def server_binary():
    return find_llama_server()  # builds it on a fresh machine (~4 min), then cached


@pytest.fixture
def server(server_binary, model_path, tmp_path):
    config = RunConfig(backend="llama_server", server_binary=server_binary, n_ctx=1024)
    backend = LlamaServerBackend(config, model_path, tmp_path / "server.log")
    yield backend
    backend.close()


def test_start_health_generate_stop(server):
    assert httpx.get(f"http://127.0.0.1:{server.port}/health").status_code == 200
    generation = server.generate(PROMPT, GREEDY)
    assert generation.tokens > 0 and generation.finish_reason in ("stop", "length")
    pid = server.process.pid
    server.close()
    assert server.process.poll() is not None and not _alive(pid)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=2)


def test_min_p_and_repeat_penalty_reach_the_server(server):
    sampling = Sampling(temperature=0.7, top_k=17, min_p=0.123, repeat_penalty=1.37, max_tokens=4, seed=5)
    server.generate(PROMPT, sampling)
    (slot,) = httpx.get(f"http://127.0.0.1:{server.port}/slots").json()
    params = slot["params"]
    assert params["min_p"] == pytest.approx(0.123) and params["repeat_penalty"] == pytest.approx(1.37)
    assert params["top_k"] == 17 and params["temperature"] == pytest.approx(0.7)


def test_greedy_asks_for_the_top_token_and_gets_the_same_text(server):
    """Greedy requests go out with top_k 1 (llama.cpp's sampler then skips a pass over the whole
    vocabulary each token): the text is the one a request with the settings' top_k 0 gets."""
    sampling = GREEDY.model_copy(update={"max_tokens": 48})
    assert sampling.top_k == 0
    generation = server.generate(PROMPT, sampling)
    (slot,) = httpx.get(f"http://127.0.0.1:{server.port}/slots").json()
    assert slot["params"]["top_k"] == 1
    body = {"prompt": PROMPT, "max_tokens": 48, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    body |= {"stop": sampling.stop or None, "seed": sampling.seed}
    reply = httpx.post(f"http://127.0.0.1:{server.port}/v1/completions", json=body, timeout=120).json()
    assert generation.text == reply["choices"][0]["text"]


def test_openai_backend_against_the_real_server(server):
    config = RunConfig(backend="openai", base_url=f"http://127.0.0.1:{server.port}/v1")
    client = OpenAIBackend(config)
    try:
        via_openai = client.generate(PROMPT, GREEDY)
        assert via_openai.text == server.generate(PROMPT, GREEDY).text
    finally:
        client.close()


def test_a_bad_model_file_names_the_log(server_binary, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    config = RunConfig(backend="llama_server", server_binary=server_binary)
    with pytest.raises(ModelLoadError, match="exited with status") as exc:
        LlamaServerBackend(config, bad, tmp_path / "server.log")
    assert "server.log" in str(exc.value) and "last lines of the server log" in str(exc.value)


def test_port_in_use(server_binary, model_path, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = RunConfig(backend="llama_server", server_binary=server_binary, server_port=port)
        with pytest.raises(ModelLoadError, match=f"port {port} is in use"):
            LlamaServerBackend(config, model_path, tmp_path / "server.log")


def test_no_binary_is_a_clear_error(tmp_path):
    config = RunConfig(backend="llama_server", server_binary=tmp_path / "nope")
    with pytest.raises(Exception, match="not an executable llama-server"):
        LlamaServerBackend(config, tmp_path / "m.gguf")


ARGS = ["--backend", "llama_server", "--limit", "6", "--max-tokens", "96", "--quiet"]


def _start_run(results, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "benchkit", "run", *ARGS, *extra, "--results-dir", results],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_samples(results, count, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(results.glob("samples/*.jsonl"))
        if files and len(files[0].read_text().splitlines()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError("the run produced no samples")


def test_server_killed_mid_run_then_resume(server_binary, tmp_path):
    results = tmp_path / "results"
    proc = _start_run(results, "--server-binary", server_binary)
    _wait_for_samples(results, 1)
    (record,) = ResultsStore(results).runs()
    os.kill(record["config"]["backend"]["server_pid"], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "llama-server died mid-run" in err and "server log" in err
    assert ResultsStore(results).get(record["run_id"])["status"] == "failed"
    done = benchkit_cli("run", *ARGS, "--server-binary", server_binary, "--results-dir", results, "--resume")
    assert done.returncode == 0, done.stderr
    final = ResultsStore(results).get(record["run_id"])
    assert final["status"] == "complete" and final["results"]["samples_done"] == 6
    assert (results / "logs" / f"{record['run_id']}-server.log").exists()


def test_sigint_leaves_no_server(server_binary, tmp_path):
    results = tmp_path / "results"
    proc = _start_run(results, "--server-binary", server_binary)
    _wait_for_samples(results, 1)
    (record,) = ResultsStore(results).runs()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert not _alive(record["config"]["backend"]["server_pid"])


def test_parallel_slots_finish_every_sample(server_binary, tmp_path):
    results = tmp_path / "results"
    done = benchkit_cli(
        "run", *ARGS, "--parallel", "3", "--server-binary", server_binary, "--results-dir", results
    )
    assert done.returncode == 0, done.stderr
    (record,) = ResultsStore(results).runs()
    assert record["results"]["samples_done"] == 6 and record["config"]["settings"]["parallel"] == 3
    assert record["config"]["backend"]["batched_decoding_reproducible"] is False


def _wait_until_up(url, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_openai_backend_against_llama_cpp_pythons_own_server(model_path, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "log").open("w"),
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/v1/models")
        client = OpenAIBackend(RunConfig(backend="openai", base_url=f"http://127.0.0.1:{port}"))
        generation = client.generate(PROMPT, GREEDY)
        assert generation.tokens > 0 and generation.text.strip()
        # streamed, and this server sends no timings: the prompt's time is the time to the first token
        assert 0 < generation.prompt_seconds < generation.seconds
        client.close()
    finally:
        server.terminate()
        server.wait(30)


def test_openai_backend_errors_are_named(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    client = OpenAIBackend(
        RunConfig(backend="openai", base_url=f"http://127.0.0.1:{port}", request_timeout=2)
    )
    with pytest.raises(ModelLoadError, match="cannot reach the server"):
        client.generate(PROMPT, GREEDY)


def test_benchkit_killed_takes_its_server_along(server_binary, tmp_path):
    results = tmp_path / "results"
    proc = _start_run(results, "--server-binary", server_binary)
    _wait_for_samples(results, 1)
    (record,) = ResultsStore(results).runs()
    proc.kill()  # kill -9: no finally, no atexit; the kernel's parent-death signal remains
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while _alive(record["config"]["backend"]["server_pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(record["config"]["backend"]["server_pid"])


def test_a_server_that_never_becomes_healthy(server_binary, model_path, tmp_path):
    config = RunConfig(backend="llama_server", server_binary=server_binary, server_start_timeout=0.05)
    with pytest.raises(ModelLoadError, match="not healthy after 0.05 s"):
        LlamaServerBackend(config, model_path, tmp_path / "server.log")


def test_a_context_too_large_for_memory(server_binary, model_path, tmp_path):
    config = RunConfig(backend="llama_server", server_binary=server_binary, n_ctx=50_000_000)
    with pytest.raises(ModelLoadError, match="exited with status") as exc:
        LlamaServerBackend(config, model_path, tmp_path / "server.log")
    assert "last lines of the server log" in str(exc.value)


def test_authentication_failure_is_named(server_binary, model_path, tmp_path, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            str(server_binary),
            "-m",
            str(model_path),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "-c",
            "512",
            "--api-key",
            "right-key",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/health")
        monkeypatch.setenv("BENCHKIT_API_KEY", "wrong-key")
        client = OpenAIBackend(RunConfig(backend="openai", base_url=f"http://127.0.0.1:{port}"))
        with pytest.raises(ModelLoadError, match="authentication failed \\(401\\)"):
            client.generate(PROMPT, GREEDY)
        monkeypatch.setenv("BENCHKIT_API_KEY", "right-key")
        assert (
            OpenAIBackend(RunConfig(backend="openai", base_url=f"http://127.0.0.1:{port}"))
            .generate(PROMPT, GREEDY)
            .tokens
            > 0
        )
    finally:
        server.terminate()
        server.wait(30)


def test_chat_requests_through_the_server(server):
    messages = [{"role": "user", "content": "Write a Python function add(a, b)."}]
    generation = server.generate(messages, Sampling(temperature=0.0, max_tokens=24))
    assert generation.tokens > 0 and generation.finish_reason in ("stop", "length")


# ------------------------------------------------------------------ faults (issue 13)
def test_a_stopped_server_times_out_naming_its_log(server_binary, model_path, tmp_path):
    config = RunConfig(backend="llama_server", server_binary=server_binary, n_ctx=1024, request_timeout=3)
    backend = LlamaServerBackend(config, model_path, tmp_path / "server.log")
    try:
        assert backend.generate(PROMPT, GREEDY).tokens > 0
        os.kill(backend.process.pid, signal.SIGSTOP)  # alive, listening, answering nothing
        started = time.monotonic()
        with pytest.raises(ModelLoadError, match="did not answer .* within 3 s") as exc:
            backend.generate(PROMPT, GREEDY)
        assert time.monotonic() - started < 30
        assert str(tmp_path / "server.log") in str(exc.value) and "last lines of the server log" in str(
            exc.value
        )
    finally:
        os.kill(backend.process.pid, signal.SIGCONT)
        backend.close()


class _FaultyEndpoint:
    """A real HTTP server on 127.0.0.1 that answers /v1/completions badly in one named way."""

    def __init__(self, fault, good_after=None):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        endpoint = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.requests += 1
                mode = "good" if good_after and endpoint.requests > good_after else fault
                getattr(endpoint, mode)(self, None)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def _send(handler, status, body: bytes, content_type="application/json"):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.end_headers()
        handler.wfile.write(body)

    def garbage(self, handler, _):
        self._send(handler, 200, b"<html>this is not JSON</html>", "text/html")

    def error_500(self, handler, _):
        self._send(handler, 500, b'{"error": "internal"}')

    def cut_stream(self, handler, _):  # two events, then the connection closes mid-answer
        event = {"choices": [{"text": "    return a", "index": 0, "finish_reason": None}]}
        self._send(handler, 200, f"data: {json.dumps(event)}\n\n".encode() * 2, "text/event-stream")

    def good(self, handler, _):
        events = [
            {"choices": [{"text": "    return a + b\n", "index": 0, "finish_reason": None}]},
            {
                "choices": [{"text": "", "index": 0, "finish_reason": "stop"}],
                "usage": {"completion_tokens": 6},
            },
        ]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self._send(handler, 200, body.encode(), "text/event-stream")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(
    "fault,stream,message",
    [
        ("garbage", True, "not server-sent events"),
        ("garbage", False, "not a completion"),
        ("error_500", True, "server error 500"),
        ("error_500", False, "server error 500"),
        ("cut_stream", True, "stream ended before the answer did"),
    ],
)
def test_a_faulty_endpoint_is_retried_then_named(fault, stream, message):
    endpoint = _FaultyEndpoint(fault)
    try:
        client = OpenAIBackend(RunConfig(backend="openai", base_url=endpoint.url, stop_runaway=stream))
        with pytest.raises(ModelLoadError, match=message) as exc:
            client.generate(PROMPT, GREEDY)
        assert endpoint.url in str(exc.value) and "gave up after 5 attempts" in str(exc.value)
        assert endpoint.requests == 5
    finally:
        endpoint.close()


def test_a_transient_fault_is_retried_until_it_passes():
    endpoint = _FaultyEndpoint("cut_stream", good_after=2)
    try:
        generation = OpenAIBackend(RunConfig(backend="openai", base_url=endpoint.url)).generate(
            PROMPT, GREEDY
        )
        assert generation.text == "    return a + b\n" and generation.tokens == 6 and endpoint.requests == 3
    finally:
        endpoint.close()


# ------------------------------------------------------------------ the loop rule, streamed
def _looping_prompt():
    from benchkit.benchmarks.human_eval import HumanEval

    return next(p for p in HumanEval().problems() if p.task_id == "HumanEval/8").prompt


LOOP_SAMPLING = Sampling(
    temperature=0.0, max_tokens=160, stop=["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]
)


def test_llama_server_stream_is_stopped_at_the_loop(server_binary, model_path, tmp_path):
    config = RunConfig(backend="llama_server", server_binary=server_binary, n_ctx=1024)
    with_rule = LlamaServerBackend(config, model_path, tmp_path / "a.log")
    without = LlamaServerBackend(
        config.model_copy(update={"stop_runaway": False}), model_path, tmp_path / "b.log"
    )
    try:
        stopped = with_rule.generate(_looping_prompt(), LOOP_SAMPLING)
        full = without.generate(_looping_prompt(), LOOP_SAMPLING)
        assert stopped.finish_reason == "loop" and full.finish_reason == "length"
        assert full.text.startswith(stopped.text) and stopped.tokens < full.tokens / 2
        # the stream closed before llama-server's last event (its timings): the prompt's time is
        # the time to the first token, not counted as decoding; the full answer has the server's
        assert 0 < stopped.prompt_seconds < stopped.seconds and 0 < full.prompt_seconds < full.seconds
        deadline = time.monotonic() + 10  # the server stops generating once the client is gone
        while time.monotonic() < deadline:
            (slot,) = httpx.get(f"http://127.0.0.1:{with_rule.port}/slots").json()
            if not slot["is_processing"]:
                break
            time.sleep(0.05)
        assert not slot["is_processing"]
        assert with_rule.describe()["runaway_rule"]["repeats"] > 1
    finally:
        with_rule.close()
        without.close()


def test_openai_stream_against_llama_cpp_pythons_own_server_is_stopped(model_path, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "log").open("w"),
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/v1/models")
        client = OpenAIBackend(RunConfig(backend="openai", base_url=f"http://127.0.0.1:{port}"))
        stopped = client.generate(_looping_prompt(), LOOP_SAMPLING)
        assert stopped.finish_reason == "loop" and stopped.loop.startswith("repeat")
        assert stopped.text.count("\n") >= 6 and stopped.tokens < 120
        assert 0 < stopped.prompt_seconds < stopped.seconds  # time to the first token
        client.close()
    finally:
        server.terminate()
        server.wait(30)
