"""A sweep of two real quants of one model and two settings, on every executor: the same verdicts."""

import pytest

from benchkit.store import ResultsStore
from tests.conftest import benchkit_cli
from tests.test_sweep_dask import Cluster, on_every_executor

pytestmark = pytest.mark.slow


def outputs(results):
    store = ResultsStore(results)
    return {
        r["sweep"]["cell"]: sorted(
            (s["task_id"], s["output"], s["passed"]) for s in store.samples(r["run_id"])
        )
        for r in store.runs()
    }


def test_two_quants_two_settings_same_verdicts_on_every_executor(tmp_path, model_path, requantised_model):
    from benchkit.model_file import inspect_model

    assert inspect_model(requantised_model).quant == "Q4_0" and inspect_model(model_path).quant == "Q4_K_M"
    path = tmp_path / "sweep.yaml"
    path.write_text(f"""name: quants
benchmarks: {{human_eval: {{limit: 3}}}}
models: [{model_path}, {requantised_model}]
grid: {{max_tokens: [16, 24]}}
fixed: {{grade_workers: 1, n_threads: 1}}
""")
    cluster = Cluster(tmp_path)
    try:
        cluster.add_worker()
        cluster.add_worker()
        runs = on_every_executor(path, tmp_path, cluster, outputs)
    finally:
        cluster.stop()
    assert len(runs["local"]) == 4 and runs["local"] == runs["dask-local"] == runs["dask"]
    dry = benchkit_cli("sweep", path, "--dry-run", "--results-dir", tmp_path / "local")
    assert "4 cells, 4 done; 0 samples left" in dry.stdout
