"""The scripted backend, and the runner's logic driven by it in seconds: generation errors as
rows, a failed run resumed, resume identity, the parallel path, Ctrl-C while a sample waits."""

import json
import signal
import subprocess
import sys
import time

import pytest

from benchkit.benchmarks.human_eval import HumanEval
from benchkit.config import RunConfig
from benchkit.errors import ConfigError, ModelLoadError
from benchkit.runner import Context, run
from benchkit.store import ResultsStore
from tests.conftest import REPO, benchkit_cli

PROBLEMS = HumanEval().problems()


def reply(i, sample=0, **entry):
    """Problem i's canonical solution as the model's output, unless `entry` says otherwise."""
    return {
        "task_id": PROBLEMS[i].task_id,
        "sample": sample,
        "output": PROBLEMS[i].data["canonical_solution"],
    } | entry


def write_script(path, *entries):
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def config(tmp_path, script, **settings):
    return RunConfig(
        backend="scripted",
        script=script,
        limit=3,
        results_dir=tmp_path / "results",
        grade_workers=2,
        **settings,
    )


@pytest.mark.slow
def test_replies_are_graded_and_errors_are_rows(tmp_path, grading_pool):
    script = write_script(
        tmp_path / "s.jsonl", reply(0), reply(1, output="    return None\n"), reply(2, error="generation")
    )
    record = run(config(tmp_path, script), progress=False, context=Context(pool=grading_pool))
    rows = {r["task_id"]: r for r in ResultsStore(tmp_path / "results").samples(record["run_id"])}
    assert [rows[p.task_id]["category"] for p in PROBLEMS[:3]] == [
        "passed",
        "wrong_answer",
        "generation_error",
    ]
    assert record["status"] == "complete" and record["results"]["total_passed"] == 1
    assert record["model"] == "s" and record["config"]["backend"] == {"script": str(script), "replies": 3}


def test_a_fatal_error_fails_the_run_and_resume_completes_it(tmp_path, grading_pool):
    script = write_script(tmp_path / "s.jsonl", reply(0), reply(1, error="fatal"), reply(2))
    with pytest.raises(ModelLoadError, match="scripted fatal error"):
        run(config(tmp_path, script), progress=False, context=Context(pool=grading_pool))
    store = ResultsStore(tmp_path / "results")
    (failed,) = store.runs()
    assert failed["status"] == "failed" and [r["task_id"] for r in store.samples(failed["run_id"])] == [
        "HumanEval/0"
    ]
    write_script(script, reply(0, output="    this would fail\n"), reply(1), reply(2))
    resumed = run(config(tmp_path, script), resume=True, progress=False, context=Context(pool=grading_pool))
    assert resumed["run_id"] == failed["run_id"] and resumed["status"] == "complete"
    samples = store.samples(failed["run_id"])
    assert sorted(r["task_id"] for r in samples) == [p.task_id for p in PROBLEMS[:3]]  # none twice
    assert resumed["results"]["total_passed"] == 3  # problem 0 kept its first, passing answer


@pytest.mark.slow
def test_resume_finds_only_runs_with_the_same_identity(tmp_path, grading_pool):
    script = write_script(tmp_path / "s.jsonl", reply(0), reply(1, error="fatal"), reply(2))
    with pytest.raises(ModelLoadError):
        run(config(tmp_path, script, max_tokens=64), progress=False, context=Context(pool=grading_pool))
    write_script(script, reply(0), reply(1), reply(2))
    with pytest.raises(Exception, match="no unfinished run with these settings"):
        run(
            config(tmp_path, script, max_tokens=65),
            resume=True,
            progress=False,
            context=Context(pool=grading_pool),
        )
    # where and how it runs is not identity: other workers and threads still resume it
    resumed = run(
        config(tmp_path, script, max_tokens=64, n_threads=1, request_timeout=5), resume=True, progress=False
    )
    assert resumed["status"] == "complete"
    assert resumed["config"]["settings"]["n_threads"] == 1  # today's value, stored


def test_parallel_requests_all_land_once(tmp_path, grading_pool):
    entries = [reply(i, sample=s, pause_s=0.05 * ((i + s) % 3)) for i in range(3) for s in range(4)]
    script = write_script(tmp_path / "s.jsonl", *entries)
    record = run(
        config(tmp_path, script, parallel=4, num_samples=4, temperature=0.8),
        progress=False,
        context=Context(pool=grading_pool),
    )
    samples = ResultsStore(tmp_path / "results").samples(record["run_id"])
    assert sorted((r["task_id"], r["sample"]) for r in samples) == sorted(
        (p.task_id, s) for p in PROBLEMS[:3] for s in range(4)
    )
    assert record["results"]["pass_at_k"] == {"pass@1": 100.0}


def test_bad_script_lines_are_named(tmp_path, grading_pool):
    script = tmp_path / "s.jsonl"
    script.write_text(json.dumps(reply(0)) + "\n{not json\n")
    with pytest.raises(ConfigError, match=rf"{script}:2: not valid JSON"):
        run(config(tmp_path, script), progress=False, context=Context(pool=grading_pool))
    with pytest.raises(ConfigError, match="needs --script"):
        run(config(tmp_path, None), progress=False, context=Context(pool=grading_pool))


@pytest.mark.slow
def test_ctrl_c_while_a_sample_waits_marks_interrupted_then_resume_completes(tmp_path):
    gate = tmp_path / "gate"
    script = write_script(tmp_path / "s.jsonl", reply(0), reply(1, wait_for=str(gate)), reply(2))
    args = [
        "run",
        "--backend",
        "scripted",
        "--script",
        script,
        "--limit",
        "3",
        "--quiet",
        "--results-dir",
        tmp_path / "results",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchkit", *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = tmp_path / "results" / "samples"
    deadline = time.monotonic() + 120
    while not any(p.read_text() for p in journal.glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.02)  # until problem 0 is stored; problem 1 then waits for the gate
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err
    (record,) = ResultsStore(tmp_path / "results").runs()
    assert record["status"] == "interrupted" and record["results"]["samples_done"] == 1
    gate.touch()
    done = benchkit_cli(*args, "--resume")
    assert done.returncode == 0, done.stderr
    assert ResultsStore(tmp_path / "results").get(record["run_id"])["results"]["samples_done"] == 3
