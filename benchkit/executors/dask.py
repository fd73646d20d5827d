"""A sweep on a Dask cluster: one cell = one task, on as many machines as the cluster has.

* The process that runs `benchkit sweep` is the only writer of `benchmark_results.json`: it
  stores each cell's record as `queued` with its run id fixed before the task is handed out,
  and the record the task returns when it ends. Workers write only their run's sample journal,
  into the shared results directory, so no file lock has to work across machines.
* A worker that dies mid-cell (kill -9, a lost node): the scheduler runs the task again
  elsewhere, and that run resumes from the journal: nothing lost, nothing generated twice.
* Cells take the worker resources the sweep file names (`resources: {GPU: 1}` with workers
  started `--resources GPU=1`): one model per GPU at a time.
* Before any cell starts: the scheduler must answer, some worker must offer the resources, and
  every worker must import benchkit of this version and see every model file.
"""

from __future__ import annotations

import atexit
import os

from benchkit import __version__
from benchkit.config import RunConfig
from benchkit.errors import BenchkitError, ConfigError
from benchkit.executors import Options
from benchkit.executors.local import raise_failed
from benchkit.store import ResultsStore
from benchkit.sweep import Sweep, cell_states
from benchkit.sweep_progress import open_sweep_progress

CONNECT_TIMEOUT_S = 20


def run_sweep(sweep: Sweep, options: Options) -> list[dict]:
    """On the running cluster whose scheduler is `options.scheduler`."""
    from distributed import Client

    if not options.scheduler:
        raise ConfigError(
            "the dask executor needs --scheduler tcp://HOST:PORT (or use --executor dask-local)",
            where="--scheduler",
        )
    try:
        client = Client(options.scheduler, timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        raise BenchkitError(
            f"cannot reach the Dask scheduler within {CONNECT_TIMEOUT_S} s ({exc})", where=options.scheduler
        ) from None
    with client:
        return _run(client, sweep, options)


def run_sweep_on_local_cluster(sweep: Sweep, options: Options) -> list[dict]:
    """On a cluster of `options.workers` local processes (distributed's LocalCluster), each
    offering the resources the sweep asks for."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=options.workers,
            threads_per_worker=1,
            processes=True,
            resources=sweep.resources or None,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        return _run(client, sweep, options)


def _run(client, sweep: Sweep, options: Options) -> list[dict]:
    from distributed import as_completed

    if options.notebook:
        raise ConfigError("--notebook runs cells with the local executor only", where="--notebook")
    store = ResultsStore(options.results_dir)
    store.check_writable()
    states = cell_states(sweep, store)
    _preflight(client, sweep, [s.cell.config for s in states if s.state != "done"])
    records = {s.cell.name: store.get(s.run_id) for s in states if s.state == "done"}
    queued = [(state, _queued(store, sweep, state)) for state in states if state.state != "done"]
    failed = []
    with open_sweep_progress(options.progress, sweep.name, states) as display:
        display.watch_journals({s.cell.name: store.samples_file(r["run_id"]) for s, r in queued})
        futures = {
            client.submit(
                run_cell,
                state.cell.config.settings(),
                record,
                resources=sweep.resources,
                key=f"benchkit-cell-{record['run_id']}",
                pure=False,
            ): (state, record)
            for state, record in queued
        }
        try:
            for future in as_completed(futures):
                state, record = futures[future]
                name = state.cell.name
                try:
                    records[name] = future.result()
                    store.save(records[name])
                except Exception as exc:  # the cell's own error, or its workers kept dying
                    failed.append(name)
                    store.save(record | {"status": "failed"})
                    display.cell_ended(state, None)
                    display.note(f"benchkit: cell {name} failed: {exc}")
                    continue
                display.cell_ended(state, records[name])
        except KeyboardInterrupt:
            client.cancel(list(futures))
            for state, record in futures.values():
                if state.cell.name not in records and state.cell.name not in failed:
                    store.save(record | {"status": "interrupted"})
            raise
    raise_failed(sweep, failed, len(states))
    return [records[s.cell.name] for s in states]


def _queued(store: ResultsStore, sweep: Sweep, state) -> dict:
    """The cell's record, stored before its task is handed out: its run id is fixed from now on."""
    from benchkit.runner import new_record

    if state.run_id:  # a partial cell: its run continues
        record = store.get(state.run_id)
    else:
        record = new_record(state.cell.config, {"name": sweep.name, "cell": state.cell.name}, "queued")
    record["status"] = "queued"
    store.save(record)
    return record


def _preflight(client, sweep: Sweep, configs: list[RunConfig]) -> None:
    """Named errors, before any cell starts, for what would otherwise fail (or hang) later."""
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)  # workers may still be starting
    except TimeoutError:
        raise BenchkitError(
            f"the Dask cluster has no workers (waited {CONNECT_TIMEOUT_S} s)",
            where=str(client.scheduler.address),
        ) from None
    workers = client.scheduler_info()["workers"]
    offered = [info.get("resources") or {} for info in workers.values()]
    if sweep.resources and not any(
        all(have.get(k, 0) >= v for k, v in sweep.resources.items()) for have in offered
    ):
        raise BenchkitError(
            f"no worker offers the resources the sweep asks for ({sweep.resources}); "
            f"workers offer {offered}: start them with e.g. --resources GPU=1",
            where=f"{sweep.file}: resources",
        )
    paths = sorted({str(c.model) for c in configs if c.model} | {str(c.results_dir) for c in configs})
    facts = client.run(worker_facts, paths, on_error="return")
    for address, fact in facts.items():
        if isinstance(fact, BaseException):
            raise BenchkitError(
                f"worker cannot run benchkit ({type(fact).__name__}: {fact}); install "
                f"benchkit {__version__} there",
                where=address,
            )
        if fact["benchkit"] != __version__:
            raise BenchkitError(
                f"worker has benchkit {fact['benchkit']}, this one is {__version__}", where=address
            )
        if fact["missing"]:
            raise BenchkitError(
                f"worker does not see {', '.join(fact['missing'])} (model files and "
                "the results directory must be on a shared path)",
                where=address,
            )


def worker_facts(paths: list[str]) -> dict:
    """Run on each worker by the preflight."""
    import benchkit

    return {"benchkit": benchkit.__version__, "missing": [p for p in paths if not os.path.exists(p)]}


class _WorkerStore(ResultsStore):
    """A worker's view of the results: the sweep's record in memory, the journal on disk."""

    def __init__(self, results_dir, record: dict):
        super().__init__(results_dir)
        self.record = record

    def runs(self) -> list[dict]:
        return [self.record]

    def save(self, run: dict) -> None:
        self.record = run


_pools: dict = {}


def run_cell(settings: dict, record: dict) -> dict:
    """The task: run (or continue) one cell's run on this worker; returns its final record."""
    from benchkit.grading import GradingPool
    from benchkit.runner import Context, run

    config = RunConfig(**settings)
    if config.grade_workers not in _pools:  # one sandbox pool per worker process, for all its cells
        _pools[config.grade_workers] = GradingPool(config.grade_workers)
        atexit.register(_pools[config.grade_workers].close)
    store = _WorkerStore(config.results_dir, record)
    context = Context(pool=_pools[config.grade_workers], sweep=record.get("sweep"), store=store)
    return run(config, resume=record["run_id"], progress=False, context=context)
