import json
import subprocess
import sys

import pytest

from benchkit.errors import StoreError
from benchkit.store import ResultsStore
from tests.conftest import stored_run

SEED_RUN = {
    "timestamp": "2025-03-01T10:00:00", "benchmark": "human_eval", "model": "old-model",
    "config": {"path": "/models/old.gguf", "gpu_layers": 99},
    "results": {"score": 12.5, "time_taken": 100.0, "total_passed": 20, "total_problems": 164,
                "difficulty_scores": {}, "failed_tasks": ["HumanEval/0"]},
}


def test_save_replace_and_keep_seed_runs(results_dir):
    store = ResultsStore(results_dir)
    results_dir.mkdir()
    store.file.write_text(json.dumps({"runs": [SEED_RUN]}))
    store.save(stored_run("r1", "running"))
    store.save(stored_run("r2", "running"))
    store.save(stored_run("r1", "complete", score=1.0))
    assert json.loads(store.file.read_text())["runs"][0] == SEED_RUN  # kept as it was
    runs = store.runs()
    seed = runs[0]  # read migrated: every seed key where it was, status and groups added
    assert {k: seed[k] for k in ("timestamp", "benchmark", "model", "results")} == \
        {k: SEED_RUN[k] for k in ("timestamp", "benchmark", "model", "results")}
    assert seed["config"]["path"] == "/models/old.gguf" and seed["config"]["gpu_layers"] == 99
    assert (seed["schema_version"], seed["status"], seed["config"]["settings"]) == (2, "complete", {})
    assert [(r.get("run_id"), r.get("status")) for r in runs[1:]] == [("r1", "complete"), ("r2", "running")]
    assert store.get("r1")["results"] == {"score": 1.0}
    assert not list(results_dir.glob(".*.tmp"))


@pytest.mark.parametrize("content,message", [
    ('{"runs": [', "not valid JSON"),
    ('{"runs": {}}', 'must be an object with a "runs" list'),
    ('[1, 2]', 'must be an object with a "runs" list'),
    ('{"runs": [3]}', r"runs\[0\] is not an object"),
])
def test_broken_file_is_named_and_never_overwritten(results_dir, content, message):
    results_dir.mkdir()
    store = ResultsStore(results_dir)
    store.file.write_text(content)
    with pytest.raises(StoreError, match=message) as exc:
        store.save(stored_run("new"))
    assert str(store.file) in str(exc.value)
    assert store.file.read_text() == content


ADD_RUNS = """
import sys
from benchkit.store import ResultsStore
from tests.conftest import stored_run
store = ResultsStore(sys.argv[1])
for i in range(25):
    store.save(stored_run(f"{sys.argv[2]}-{i}", score=i))
"""


def test_two_processes_adding_runs_lose_nothing(results_dir):
    procs = [subprocess.Popen([sys.executable, "-c", ADD_RUNS, str(results_dir), name])
             for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    ids = {r["run_id"] for r in ResultsStore(results_dir).runs()}
    assert ids == {f"{n}-{i}" for n in "ab" for i in range(25)}


def test_torn_sample_line_is_dropped_and_appends_start_clean(results_dir):
    store = ResultsStore(results_dir)
    with store.sample_log("r") as log:
        log.write({"task_id": "t", "sample": 0})
    path = store.samples_file("r")
    with path.open("a") as fh:
        fh.write('{"task_id": "t", "sam')  # killed mid-write
    assert store.samples("r") == [{"task_id": "t", "sample": 0}]
    with store.sample_log("r") as log:
        log.write({"task_id": "t", "sample": 1})
    assert [r["sample"] for r in store.samples("r")] == [0, 1]


def test_corrupt_sample_line_in_the_middle_is_named(results_dir):
    store = ResultsStore(results_dir)
    path = store.samples_file("r")
    path.parent.mkdir(parents=True)
    path.write_text('{"task_id": "t", "sample": 0}\nnot json\n{"task_id": "t", "sample": 1}\n')
    with pytest.raises(StoreError, match=f"{path}:2"):
        store.samples("r")


def test_unknown_run_id(results_dir):
    with pytest.raises(StoreError, match="no run with run_id 'zzz'"):
        ResultsStore(results_dir).get("zzz")
