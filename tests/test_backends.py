"""The in-process backend against llama-cpp-python's own create_completion and
create_chat_completion, on the real model."""

import functools

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from benchkit.backends.chat_format import chat_prompt
from benchkit.backends.llama_cpp import LlamaCppBackend, _prompt_tokens
from benchkit.benchmarks.human_eval import COMPLETION_STOP, HumanEval
from benchkit.benchmarks.lcb import SYSTEM_MESSAGE
from benchkit.config import RunConfig, Sampling
from tests import llama_reference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(model_path):
    backend = LlamaCppBackend(RunConfig(n_threads=1), model_path)
    yield backend
    backend.close()


def test_several_samples_share_one_prompt_evaluation_and_keep_their_texts(backend):
    """--num-samples N: the prompt is evaluated once per problem; sample i (seed + i) still
    gets the text a fresh evaluation of the prompt gives it."""
    prompt = HumanEval().problems()[10].prompt
    samplings = [
        Sampling(temperature=0.8, max_tokens=32, stop=COMPLETION_STOP, seed=100 + i) for i in range(3)
    ]
    backend.last_prompt = None
    generations = [backend.generate(prompt, samplings[0])]
    evaluated = backend.last_prompt[1]
    generations += [backend.generate(prompt, s) for s in samplings[1:]]
    assert backend.last_prompt[1] is evaluated  # not evaluated again
    assert len({g.text for g in generations}) > 1  # different seeds, different samples
    for generation, sampling in zip(generations, samplings):
        assert _result(generation) == llama_reference.completion(backend.llm, prompt, sampling)


def test_a_new_prompt_is_evaluated_afresh(backend):
    problems = HumanEval().problems()
    sampling = Sampling(max_tokens=24, stop=COMPLETION_STOP)
    backend.generate(problems[0].prompt, sampling)
    generation = backend.generate(problems[2].prompt, sampling)
    assert backend.last_prompt[0] == _prompt_tokens(backend.llm, problems[2].prompt)
    assert _result(generation) == llama_reference.completion(backend.llm, problems[2].prompt, sampling)


def _result(generation):
    return generation.text, generation.tokens, generation.finish_reason


# ------------------------------------------------------------------ chat prompts (issue 14)
@pytest.fixture(scope="module")
def chat_backends(chat_model):
    """The GGUF with Gemma 3's chat template, with the loop rule and without it."""
    with llama_reference.with_and_without_rule(chat_model) as backends:
        yield backends


def chat_cases():
    """HumanEval's chat messages (two problems) and LiveCodeBench's form (its system message
    before the question; Gemma's template folds it into the first user turn), with stops."""
    human_eval = HumanEval()
    problems = {p.task_id: p for p in human_eval.problems()}
    first, second, third = (human_eval.prompt(problems[f"HumanEval/{i}"], "chat") for i in (0, 2, 8))
    with_system = [{"role": "system", "content": SYSTEM_MESSAGE}, *third]
    return [(first, []), (second, []), (with_system, ["\n\n"])]


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_chat_generation_equals_create_chat_completion(chat_backends, temperature):
    """Chat messages rendered by the GGUF's template as create_chat_completion renders them (its
    bos, generation prompt, <eos> stop string and stop token), then benchkit's token loop, not
    llama-cpp-python's per-token path: the same text, token count and finish reason; with the
    loop rule, a prefix of that text."""
    without, with_rule = chat_backends[False], chat_backends[True]
    assert without.llm.chat_format == "chat_template.default"  # the GGUF's own template
    for messages, stop in chat_cases():
        sampling = Sampling(temperature=temperature, max_tokens=48, stop=stop, seed=2)
        ours = without.generate(messages, sampling)
        assert without.last_prompt[0] == chat_prompt(without.llm, messages, stop).tokens  # the fast loop
        assert _result(ours) == llama_reference.chat_completion(without.llm, messages, sampling)
        ruled = with_rule.generate(messages, sampling)
        assert ours.text.startswith(ruled.text) and ruled.tokens <= ours.tokens


def test_chat_formats_other_than_the_gguf_template(chat_backends):
    """The other handlers create_chat_completion may pick: a format by name (chatml, one of
    those llama-cpp-python guesses from a template), a Jinja2 handler given to the Llama whose
    template ends the prompt with its stop token (nothing is generated, finish "stop"), and a
    handler chat_format does not know, which goes through create_chat_completion itself."""
    backend = chat_backends[False]
    messages = chat_cases()[0][0]
    sampling = Sampling(temperature=0.8, max_tokens=16, seed=3)
    ends_with_eos = Jinja2ChatFormatter(
        "{{ bos_token }}{{ messages[0]['content'] }}{{ eos_token }}",
        eos_token="<eos>",
        bos_token="<bos>",
        stop_token_ids=[backend.llm.token_eos()],
    ).to_chat_handler()
    unknown = functools.partial(backend.llm._chat_handlers["chat_template.default"])
    cases = {"chatml": ("chatml", None), "ends with eos": (None, ends_with_eos), "unknown": (None, unknown)}
    saved = backend.llm.chat_format, backend.llm.chat_handler
    try:
        for name, (chat_format, handler) in cases.items():
            backend.llm.chat_format, backend.llm.chat_handler = chat_format or saved[0], handler
            ours = backend.generate(messages, sampling)
            assert _result(ours) == llama_reference.chat_completion(backend.llm, messages, sampling), name
            assert (chat_prompt(backend.llm, messages, []) is None) == (name == "unknown")
            if name == "ends with eos":
                assert _result(ours) == ("", 0, "stop")
    finally:
        backend.llm.chat_format, backend.llm.chat_handler = saved
