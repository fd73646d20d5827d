"""The in-process backend against llama-cpp-python's own create_completion, on the real model."""

import pytest

from benchkit.backends.llama_cpp import LlamaCppBackend, _prompt_tokens
from benchkit.benchmarks.human_eval import COMPLETION_STOP, HumanEval
from benchkit.config import RunConfig, Sampling

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(model_path):
    backend = LlamaCppBackend(RunConfig(n_threads=1), model_path)
    yield backend
    backend.close()


def _reference(backend, prompt, sampling):
    """What benchkit generated before: create_completion on a fresh context."""
    backend.llm.reset()
    reply = backend.llm.create_completion(
        prompt,
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=1.0,
        top_k=0,
        min_p=0.0,
        typical_p=1.0,
        repeat_penalty=1.0,
        frequency_penalty=0.0,
        presence_penalty=0.0,
        mirostat_mode=0,
        seed=sampling.seed,
        stop=sampling.stop,
    )
    return reply["choices"][0]["text"], reply["usage"]["completion_tokens"]


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
        assert (generation.text, generation.tokens) == _reference(backend, prompt, sampling)


def test_a_new_prompt_is_evaluated_afresh(backend):
    problems = HumanEval().problems()
    sampling = Sampling(max_tokens=24, stop=COMPLETION_STOP)
    backend.generate(problems[0].prompt, sampling)
    generation = backend.generate(problems[2].prompt, sampling)
    assert backend.last_prompt[0] == _prompt_tokens(backend.llm, problems[2].prompt)
    assert (generation.text, generation.tokens) == _reference(backend, problems[2].prompt, sampling)
