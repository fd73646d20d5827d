"""Sweeps on Dask: a real `dask scheduler` and `dask worker` processes on loopback (as on two
machines), distributed's LocalCluster, a worker killed mid-cell, and named errors before any
cell starts."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchkit.store import ResultsStore
from tests.conftest import REPO, benchkit_cli
from tests.test_scripted import reply, write_script

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A scheduler and workers started from the command line, each its own process group."""

    def __init__(self, tmp_path):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.log = tmp_path / "dask.log"
        self.procs = [
            self._start(
                "dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                self.address.rsplit(":", 1)[1],
                "--no-dashboard",
            )
        ]

    def _start(self, command, *args, cwd=REPO, env=None):
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", f"distributed.cli.{command}", *args],
                stdout=log,
                stderr=log,
                start_new_session=True,
                cwd=cwd,
                env=env,
            )

    def add_worker(self, *args, cwd=REPO, env=None):
        self.procs.append(
            self._start(
                "dask_worker", self.address, "--nthreads", "1", "--no-dashboard", *args, cwd=cwd, env=env
            )
        )

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=60)

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def cluster(tmp_path):
    cluster = Cluster(tmp_path)
    yield cluster
    cluster.stop()


def scripted_sweep(tmp_path, gate=None, resources="{GPU: 1}"):
    """Two scripted "models" x two sample counts; the first model's problem 1 may wait on a gate."""
    right = write_script(
        tmp_path / "right.jsonl",
        *[
            reply(i, sample=s, **({"wait_for": str(gate)} if gate and i == 1 else {}))
            for i in range(3)
            for s in range(2)
        ],
    )
    wrong = write_script(
        tmp_path / "wrong.jsonl",
        *[reply(i, sample=s, output="    return 0\n") for i in range(3) for s in range(2)],
    )
    path = tmp_path / "sweep.yaml"
    path.write_text(f"""name: dk
benchmarks: {{human_eval: {{limit: 3}}}}
models: [{{backend: scripted, script: {right}}}, {{backend: scripted, script: {wrong}}}]
grid: {{num_samples: [1, 2]}}
fixed: {{grade_workers: 1, temperature: 0.5}}
resources: {resources}
""")
    return path


def verdicts(results):
    store = ResultsStore(results)
    return {
        r["sweep"]["cell"]: sorted(
            (s["task_id"], s["sample"], s["passed"]) for s in store.samples(r["run_id"])
        )
        for r in store.runs()
    }


def on_every_executor(path, tmp_path, cluster, collect) -> dict:
    """Run the sweep locally, on a 2-worker LocalCluster and on `cluster`; what `collect` makes of
    each one's results directory."""
    runs = {}
    for name, args in {
        "local": [],
        "dask-local": ["--executor", "dask-local", "--workers", "2"],
        "dask": ["--executor", "dask", "--scheduler", cluster.address],
    }.items():
        done = benchkit_cli("sweep", path, "--quiet", "--results-dir", tmp_path / name, *args)
        assert done.returncode == 0, done.stderr
        runs[name] = collect(tmp_path / name)
    return runs


def test_same_verdicts_locally_on_a_local_cluster_and_on_a_cli_cluster(tmp_path, cluster):
    path = scripted_sweep(tmp_path)
    cluster.add_worker("--resources", "GPU=1")
    cluster.add_worker("--resources", "GPU=1")
    runs = on_every_executor(path, tmp_path, cluster, verdicts)
    assert runs["local"] == runs["dask-local"] == runs["dask"] and len(runs["local"]) == 4
    again = benchkit_cli(
        "sweep",
        path,
        "--quiet",
        "--results-dir",
        tmp_path / "dask",
        "--executor",
        "dask",
        "--scheduler",
        cluster.address,
    )
    assert again.returncode == 0 and len(ResultsStore(tmp_path / "dask").runs()) == 4  # nothing rerun


def test_a_worker_killed_mid_cell_loses_and_repeats_nothing(tmp_path, cluster):
    gate = tmp_path / "gate"
    path = scripted_sweep(tmp_path, gate)
    cluster.add_worker("--resources", "GPU=1")
    cluster.add_worker("--resources", "GPU=1")
    results = tmp_path / "results"
    with cluster.client() as client:
        client.wait_for_workers(2, timeout=120)  # both, so that one can take over the other's cell
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchkit",
            "sweep",
            str(path),
            "--quiet",
            "--executor",
            "dask",
            "--scheduler",
            cluster.address,
            "--results-dir",
            str(results),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with cluster.client() as client:
        key, journal = waiting_cell(client, results, sweep)
        (address,) = [w for w, keys in client.processing().items() if key in keys]
        pid = client.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)  # the worker process (its nanny starts a new one)
        gate.touch()
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err
    store = ResultsStore(results)
    runs = store.runs()
    assert len(runs) == 4 and {r["status"] for r in runs} == {"complete"}
    for run in runs:
        keys = [(s["task_id"], s["sample"]) for s in store.samples(run["run_id"])]
        assert len(keys) == len(set(keys)) == 3 * run["config"]["settings"]["num_samples"]


def waiting_cell(client, results, sweep, timeout=180):
    """The task key of the cell whose problem 1 waits at the gate, once its problem 0 is stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert sweep.poll() is None, sweep.stderr.read()
        for run in ResultsStore(results).runs() if (results / "benchmark_results.json").exists() else []:
            journal = ResultsStore(results).samples_file(run["run_id"])
            if run["model"] == "right" and journal.exists() and journal.read_text().count("\n") >= 1:
                return f"benchkit-cell-{run['run_id']}", journal
        time.sleep(0.1)
    raise AssertionError("no cell reached the gate")


def test_resources_that_no_worker_offers_are_a_named_error(tmp_path, cluster):
    cluster.add_worker("--resources", "GPU=1")
    path = scripted_sweep(tmp_path, resources="{TPU: 1}")
    with cluster.client() as client:
        client.wait_for_workers(1, timeout=120)
    done = benchkit_cli(
        "sweep",
        path,
        "--executor",
        "dask",
        "--scheduler",
        cluster.address,
        "--results-dir",
        tmp_path / "results",
    )
    assert done.returncode == 1 and "no worker offers the resources" in done.stderr
    assert f"{path}: resources" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "results" / "benchmark_results.json").exists()


def test_a_worker_with_another_benchkit_is_a_named_error(tmp_path, cluster):
    other = tmp_path / "other"
    shutil.copytree(REPO / "benchkit", other / "benchkit")
    init = other / "benchkit" / "__init__.py"
    init.write_text(init.read_text().replace("__version__ = ", "__version__ = '0.0.0-other' or "))
    cluster.add_worker(cwd=other, env=os.environ | {"PYTHONPATH": str(other)})
    with cluster.client() as client:
        client.wait_for_workers(1, timeout=120)
    done = benchkit_cli(
        "sweep",
        scripted_sweep(tmp_path, resources="{}"),
        "--executor",
        "dask",
        "--scheduler",
        cluster.address,
        "--results-dir",
        tmp_path / "results",
    )
    assert done.returncode == 1 and "worker has benchkit 0.0.0-other" in done.stderr


def test_an_unreachable_scheduler_is_a_named_error(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    done = benchkit_cli(
        "sweep",
        scripted_sweep(tmp_path),
        "--executor",
        "dask",
        "--scheduler",
        address,
        "--results-dir",
        tmp_path / "results",
    )
    assert done.returncode == 1 and f"{address}: cannot reach the Dask scheduler" in done.stderr


def test_slurm_job_script_asks_for_one_gpu_per_worker():
    from dask_jobqueue import SLURMCluster

    with SLURMCluster(
        cores=4,
        memory="16GB",
        processes=1,
        walltime="04:00:00",
        job_extra_directives=["--gres=gpu:1"],
        worker_extra_args=["--resources", "GPU=1"],
        scheduler_options={"host": "127.0.0.1", "dashboard_address": None},
    ) as cluster:
        script = cluster.job_script()
    assert "#SBATCH --gres=gpu:1" in script and "--resources GPU=1" in script
    assert "distributed.cli.dask_worker" in script and str(Path(sys.executable)) in script
