"""The run record's schema: older files (the seed's, benchkit 0.1's) load migrated, newer refused."""

import json
import shutil

import pytest

from benchkit import analysis
from benchkit.config import RunConfig
from benchkit.errors import StoreError
from benchkit.record import SCHEMA_VERSION
from benchkit.runner import _find_resumable
from benchkit.store import ResultsStore
from tests.conftest import REPO, stored_run

FIXTURES = REPO / "tests" / "fixtures"
V1_RUN = "20261125-074706-human_eval-75596e"


@pytest.fixture
def copy_of(tmp_path):
    def copy(name):
        return shutil.copytree(FIXTURES / name, tmp_path / name)

    return copy


def test_seed_file_loads_with_every_seed_key_in_place(copy_of):
    store = ResultsStore(copy_of("results-seed"))
    before = store.file.read_text()
    human_eval, lcb = store.runs()
    assert human_eval["schema_version"] == lcb["schema_version"] == SCHEMA_VERSION
    assert human_eval["status"] == "complete" and "run_id" not in human_eval
    assert human_eval["command"].startswith(".venv/bin/python bench_runner.py")  # unknown keys kept
    assert (
        lcb["config"]["path"].endswith("smollm2-1.7b-instruct-q4_k_m.gguf")
        and lcb["config"]["gpu_layers"] == 40
    )
    assert lcb["results"]["difficulty_scores"]["easy"] == {"passed": 9, "total": 115, "score": 100 * 9 / 115}
    assert lcb["results"]["failed_tasks"] == ["atcoder/abc374/abc374_a"] * 2  # as stored, not rewritten
    store.save(stored_run("new"))
    stored = json.loads(store.file.read_text())["runs"]
    assert stored[:2] == json.loads(before)["runs"] and stored[2]["schema_version"] == SCHEMA_VERSION
    table = analysis.runs_table(store.dir)
    assert list(table.run_id) == ["#0", "#1", "new"] and table.score[1] == pytest.approx(4.0816, abs=1e-3)
    difficulty = analysis.difficulty_table(table[table.benchmark == "lcb"], store.dir)
    assert difficulty.loc[table.label[1], "hard"] == pytest.approx(100 * 3 / 185)


def test_v1_file_is_grouped_and_its_runs_stay_resumable(copy_of):
    store = ResultsStore(copy_of("results-v1"))
    run = store.get(V1_RUN)
    config = run["config"]
    assert config["settings"]["max_tokens"] == 16 and config["settings"]["limit"] == 2
    assert config["model"]["quant"] == "Q4_K_M" and config["model"]["sha256"].startswith("a5fd3b62")
    assert config["machine"]["host"] and config["machine"]["pid"] == 9992
    assert config["sandbox"]["time_limit_s"] == 3.0 and config["sandbox"]["selfcheck"]["ok"]
    assert config["backend"]["llama_cpp_python"] == "0.3.36" and config["data"]["problems_files"]
    assert config["path"] == config["model"]["path"] and config["gpu_layers"] == -1
    assert analysis.samples_table(V1_RUN, store.dir).shape[0] == 2

    raw = json.loads(store.file.read_text())
    raw["runs"][0]["status"] = "interrupted"
    store.file.write_text(json.dumps(raw))
    assert config["settings"]["stop_runaway"] is False  # 0.1 had no loop rule
    same = RunConfig(limit=2, max_tokens=16, stop_runaway=False, results_dir=store.dir)
    assert _find_resumable(store, same, True)["run_id"] == V1_RUN
    with pytest.raises(StoreError, match="no unfinished run with these settings"):
        _find_resumable(store, same.model_copy(update={"max_tokens": 17}), True)
    with pytest.raises(StoreError, match="no unfinished run with these settings"):
        _find_resumable(store, same.model_copy(update={"stop_runaway": True}), True)


def test_a_newer_schema_is_refused_and_left_untouched(results_dir):
    store = ResultsStore(results_dir)
    results_dir.mkdir()
    store.file.write_text(json.dumps({"runs": [stored_run("future") | {"schema_version": 99}]}))
    before = store.file.read_text()
    with pytest.raises(StoreError, match="newer benchkit .schema_version 99; this one reads up to 2.") as exc:
        store.runs()
    assert str(store.file) in str(exc.value) and store.file.read_text() == before


def test_a_record_that_breaks_the_schema_names_the_key(results_dir):
    store = ResultsStore(results_dir)
    with pytest.raises(StoreError, match="run 'x': status: Input should be 'queued', 'running'"):
        store.save(stored_run("x", "finished"))
    with pytest.raises(StoreError, match="results.total_problems"):
        store.save(stored_run("y", total_problems="many"))
    assert not store.file.exists()
