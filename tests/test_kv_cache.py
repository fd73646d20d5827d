"""KV-cache type and flash attention: settings of both llama.cpp backends, and of a run's identity."""

import pytest

from benchkit.backends.llama_cpp import LlamaCppBackend
from benchkit.backends.llama_server import LlamaServerBackend
from benchkit.backends.server_build import find_llama_server
from benchkit.config import RunConfig, Sampling
from benchkit.errors import ModelLoadError
from benchkit.runner import identity

pytestmark = pytest.mark.slow
PROMPT = "def add(a, b):\n"
GREEDY = Sampling(max_tokens=12, stop=["\ndef "])
QUANTISED = {"cache_type_k": "q8_0", "cache_type_v": "q8_0", "flash_attn": True}


def test_in_process_cache_types_reach_llama_cpp(model_path):
    import llama_cpp

    backend = LlamaCppBackend(RunConfig(n_ctx=512, **QUANTISED), model_path)
    try:
        params = backend.llm.context_params
        assert (params.type_k, params.type_v) == (llama_cpp.GGML_TYPE_Q8_0, llama_cpp.GGML_TYPE_Q8_0)
        assert params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        assert backend.generate(PROMPT, GREEDY).tokens > 0
    finally:
        backend.close()


def test_llama_server_gets_the_cache_types(model_path, tmp_path):
    config = RunConfig(backend="llama_server", server_binary=find_llama_server(), n_ctx=512, **QUANTISED)
    backend = LlamaServerBackend(config, model_path, tmp_path / "server.log")
    try:
        assert backend.generate(PROMPT, GREEDY).tokens > 0
        assert "-ctk q8_0 -ctv q8_0 -fa on" in " ".join(backend.command)
    finally:
        backend.close()
    # the server really uses them: llama.cpp refuses a quantised V cache without flash attention
    with pytest.raises(ModelLoadError, match="quantized V cache requires flash_attn"):
        LlamaServerBackend(config.model_copy(update={"flash_attn": False}), model_path, tmp_path / "s2.log")


def test_cache_types_are_part_of_a_runs_identity():
    assert identity(RunConfig()) != identity(RunConfig(cache_type_k="q8_0"))
    assert identity(RunConfig()) != identity(RunConfig(flash_attn=True))
