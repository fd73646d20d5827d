"""`--resume` without a run id finds the run it continues, with every backend: what a backend
learns about itself (its port, the URL it normalised, the server's pid) never changes the
identity that a resumed run is matched by."""

import json

import pytest

from benchkit.backends.llama_server import LlamaServerBackend
from benchkit.backends.server_build import find_llama_server
from benchkit.config import RunConfig
from benchkit.runner import run
from benchkit.store import ResultsStore

pytestmark = pytest.mark.slow


def interrupt_stored(results_dir, run_id, drop_last_sample: bool):
    """Mark a finished run interrupted, as Ctrl-C would have left it, optionally one sample short."""
    store = ResultsStore(results_dir)
    data = json.loads(store.file.read_text())
    for record in data["runs"]:
        if record["run_id"] == run_id:
            record["status"] = "interrupted"
    store.file.write_text(json.dumps(data))
    if drop_last_sample:
        journal = store.samples_file(run_id)
        lines = journal.read_text().splitlines(keepends=True)
        journal.write_text("".join(lines[:-1]))


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory, model_path):
    config = RunConfig(backend="llama_server", server_binary=find_llama_server(), n_ctx=1024)
    backend = LlamaServerBackend(config, model_path, tmp_path_factory.mktemp("s") / "server.log")
    yield backend
    backend.close()


def settings_of(backend, llama_server, results_dir) -> dict:
    common = {"limit": 2, "max_tokens": 8, "results_dir": results_dir, "grade_workers": 2}
    if backend == "openai":  # the user gives /v1 and no model name: the backend normalises both
        return common | {"backend": "openai", "base_url": f"http://127.0.0.1:{llama_server.port}/v1"}
    if backend == "llama_server":
        return common | {"backend": "llama_server", "server_binary": str(llama_server.binary)}
    return common


@pytest.mark.parametrize("backend", ["llama_cpp", "llama_server", "openai"])
def test_resume_without_a_run_id_finds_the_run(backend, llama_server, tmp_path):
    config = RunConfig(**settings_of(backend, llama_server, tmp_path / "results"))
    first = run(config, progress=False)
    interrupt_stored(config.results_dir, first["run_id"], drop_last_sample=True)

    resumed = run(
        RunConfig(**settings_of(backend, llama_server, tmp_path / "results")), resume=True, progress=False
    )
    assert resumed["run_id"] == first["run_id"] and resumed["status"] == "complete"
    assert resumed["config"]["settings"] == first["config"]["settings"]
    samples = ResultsStore(config.results_dir).samples(first["run_id"])
    assert sorted(r["task_id"] for r in samples) == ["HumanEval/0", "HumanEval/1"]
