"""Real runs of the embedded Gemma model: generation, grading, storage, kill -9 and resume."""

import signal
import subprocess
import sys
import time

import pytest

from benchkit.errors import ConfigError, StoreError
from benchkit.runner import run
from benchkit.store import ResultsStore
from tests.conftest import REPO, benchkit_cli

pytestmark = pytest.mark.slow

VOLATILE = {"time_taken", "generation_seconds"}
RUN_ARGS = ["--limit", "6", "--max-tokens", "96", "--quiet"]  # long enough to be stopped mid-way


def stable(results):
    return {k: v for k, v in results.items() if k not in VOLATILE}


def by_sample(records):
    return {(r["task_id"], r["sample"]): r["output"] for r in records}


@pytest.mark.needs_bwrap
def test_real_run_is_stored_in_the_seed_format_extended(small_config, model_path):
    record = run(small_config, progress=False)
    assert record["status"] == "complete" and record["benchmark"] == "human_eval"
    res, cfg = record["results"], record["config"]
    for key in (
        "score",
        "time_taken",
        "total_passed",
        "total_problems",
        "difficulty_scores",
        "failed_tasks",
        "pass_at_k",
        "categories",
    ):
        assert key in res
    assert res["total_problems"] == 4 and len(set(res["failed_tasks"])) == len(res["failed_tasks"])
    assert res["score"] == res["pass_at_k"]["pass@1"] == pytest.approx(100 * res["total_passed"] / 4)
    assert record["schema_version"] == 2 and cfg["gpu_layers"] == -1  # the seed's keys stay
    assert cfg["path"] == str(model_path) and cfg["model"]["quant"] == "Q4_K_M"
    assert cfg["model"]["sha256"].startswith("a5fd3b62") and cfg["model"]["architecture"] == "gemma3"
    assert cfg["settings"] == small_config.settings()
    assert "bwrap" in cfg["sandbox"]["isolation"] and cfg["sandbox"]["selfcheck"]["ok"]
    assert "llama_cpp_python" in cfg["backend"] and cfg["data"]["problems_files"]
    for key in ("python", "cpu", "gpu", "benchkit", "host", "pid"):
        assert key in cfg["machine"], key
    stored = ResultsStore(small_config.results_dir)
    assert stored.get(record["run_id"]) == record
    samples = stored.samples(record["run_id"])
    assert sorted(r["task_id"] for r in samples) == [f"HumanEval/{i}" for i in range(4)]
    for r in samples:
        assert r["program"].startswith(r["prompt"] + r["completion"])
        assert r["tokens"] > 0 and r["category"] in res["categories"]


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    interrupted, reference = tmp_path / "a", tmp_path / "b"
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchkit", "run", *RUN_ARGS, "--results-dir", interrupted],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples = interrupted / "samples"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        files = list(samples.glob("*.jsonl")) if samples.exists() else []
        if files and len(files[0].read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ResultsStore(interrupted)
    (run_id,) = [r["run_id"] for r in store.runs()]
    assert store.get(run_id)["status"] == "running"
    before = store.samples(run_id)
    assert 2 <= len(before) < 6

    done = benchkit_cli("run", *RUN_ARGS, "--results-dir", interrupted, "--resume")
    assert done.returncode == 0, done.stderr
    after = store.samples(run_id)
    assert after[: len(before)] == before  # nothing finished was regenerated or rewritten
    assert len(after) == 6 and len(by_sample(after)) == 6

    assert benchkit_cli("run", *RUN_ARGS, "--results-dir", reference).returncode == 0
    (ref,) = ResultsStore(reference).runs()
    resumed = store.get(run_id)
    assert resumed["status"] == "complete"
    assert stable(resumed["results"]) == stable(ref["results"])
    assert by_sample(after) == by_sample(ResultsStore(reference).samples(ref["run_id"]))


def test_ctrl_c_marks_the_run_interrupted(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchkit", "run", *RUN_ARGS, "--results-dir", tmp_path],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("samples/*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "--resume" in err and "Traceback" not in err
    (record,) = ResultsStore(tmp_path).runs()
    assert record["status"] == "interrupted"
    assert record["results"]["samples_done"] < 6
    # resuming by run_id finishes it
    done = benchkit_cli("run", "--results-dir", tmp_path, "--quiet", "--resume", record["run_id"])
    assert done.returncode == 0, done.stderr
    assert ResultsStore(tmp_path).get(record["run_id"])["results"]["samples_done"] == 6


def test_resume_without_a_matching_run(small_config):
    with pytest.raises(StoreError, match="no unfinished run with these settings"):
        run(small_config, resume=True, progress=False)


def test_chat_style_needs_a_chat_template(small_config):
    small_config.prompt_style = "chat"
    with pytest.raises(ConfigError, match="no chat template"):
        run(small_config, progress=False)


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "does not exist"),
        (b"not a model", "not a GGUF file"),
        (b"GGUF\x03\x00\x00\x00", "corrupt or truncated"),
    ],
)
def test_bad_model_file_exits_non_zero_with_its_name(tmp_path, content, message):
    model = tmp_path / "model.gguf"
    if content is not None:
        model.write_bytes(content)
    done = benchkit_cli("run", "--model", model, "--results-dir", tmp_path / "r", "--limit", "1")
    assert done.returncode == 1
    assert str(model) in done.stderr and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r" / "benchmark_results.json").exists()
