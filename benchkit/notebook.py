"""Notebook side of benchkit: run from papermill parameters, show a run, compare runs (widgets
or static), execute a notebook under papermill and export it as an offline HTML page.

The notebooks in `notebooks/` only call these functions, so they stay thin.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pandas as pd

from benchkit import analysis, errors, figures, report
from benchkit.config import RunConfig, validate_config
from benchkit.errors import BenchkitError, ConfigError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
EXTRA_PARAMETERS = {"resume", "sweep"}
# names in a kernel's namespace that are not parameters: IPython's, and what the notebooks bind
# after their parameters cell (so "Run All" works again in the same kernel)
_NOT_PARAMETERS = {"In", "Out", "get_ipython", "exit", "quit", "open", "record"}


def run_from_parameters(namespace: dict, progress: bool = True) -> dict:
    """Validate the notebook's parameters (its parameters cell and what papermill injected) and
    run the benchmark. A parameter left None means RunConfig's (or the benchmark's) own default:
    only the others reach RunConfig. Interrupting the kernel marks the run interrupted and the
    notebook says how to resume it."""
    from benchkit.runner import Context, run

    enter_project_dir()
    _use_inline_plotly()
    params = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_")
        and k not in _NOT_PARAMETERS
        and not callable(v)
        and type(v).__name__ != "module"
    }
    unknown = sorted(set(params) - set(RunConfig.model_fields) - EXTRA_PARAMETERS)
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {unknown}; known: {', '.join(RunConfig.model_fields)}",
            where="papermill parameters",
        )
    resume, sweep = params.pop("resume", None), params.pop("sweep", None)
    config = validate_config({k: v for k, v in params.items() if v is not None}, "papermill parameters")
    try:
        return run(config, resume=resume, progress=progress, context=Context(sweep=sweep))
    except KeyboardInterrupt:
        _say_how_to_resume(config)
        raise


def enter_project_dir() -> None:
    """Relative paths in parameters (results/, ../shared/...) mean the project folder. papermill
    starts the kernel where it was started (the project folder, in the README's commands);
    Jupyter starts it in the notebook's own folder, notebooks/, so step up from there."""
    cwd = Path.cwd()
    if cwd.name == NOTEBOOK_DIR.name:
        os.chdir(cwd.parent)


def _results(results_dir: str | Path | None) -> Path:
    """A notebook's results_dir parameter; None = RunConfig's default."""
    return RunConfig().results_dir if results_dir is None else Path(results_dir)


def _say_how_to_resume(config: RunConfig) -> None:
    from IPython.display import Markdown, display

    from benchkit.store import ResultsStore

    mine = [
        r
        for r in ResultsStore(config.results_dir).runs()
        if r["status"] == "interrupted" and r["config"]["machine"].get("pid") == os.getpid()
    ]
    if not mine:
        return
    record = mine[-1]
    res = record.get("results", {})
    display(
        Markdown(
            f"**Run `{record['run_id']}` interrupted** after {res.get('samples_done', 0)} of "
            f"{res.get('samples_expected', '?')} samples; every finished sample is kept. To continue "
            f'it, set `resume = "{record["run_id"]}"` (or `resume = True`) in the parameters cell '
            f"and run all cells again, or from a terminal: `benchkit run --resume {record['run_id']}`."
        )
    )


def summary(record: dict) -> pd.DataFrame:
    res, cfg = record["results"], record["config"]
    settings = cfg["settings"]
    rows = {
        "run": record["run_id"],
        "status": record["status"],
        "model": record["model"],
        "quant": cfg["model"].get("quant"),
        "prompt style": settings.get("prompt_style"),
        "temperature": settings.get("temperature"),
        "max tokens": settings.get("max_tokens"),
        "problems": res["total_problems"],
        "solved": res["total_passed"],
        "score (pass@1 %)": res["score"],
        **{f"{k} %": v for k, v in res.get("pass_at_k", {}).items() if k != "pass@1"},
        "wall time (s)": res["time_taken"],
        "generation time (s)": res.get("generation_seconds"),
        "tokens": res.get("tokens"),
        "isolation": cfg["sandbox"].get("isolation"),
    }
    return pd.DataFrame({"value": rows}).rename_axis("")


def category_figure(record: dict, results_dir: str | Path | None = None):
    results_dir = _results(results_dir)
    runs = analysis.runs_table(results_dir, run_ids=[record["run_id"]])
    return figures.category_figure(analysis.category_table(runs, results_dir))


def difficulty_figure(record: dict, results_dir: str | Path | None = None):
    results_dir = _results(results_dir)
    runs = analysis.runs_table(results_dir, run_ids=[record["run_id"]])
    return figures.difficulty_figure(analysis.difficulty_table(runs, results_dir))


def data_note(record: dict) -> str:
    """Whether the score used the private tests: public-only scores are not leaderboard scores."""
    data = record["config"].get("data", {})
    if data.get("public_tests_only"):
        return (
            "**Public tests only** — these problem files carry no private tests, so this score "
            "is higher than the official one and not comparable with the leaderboard."
        )
    return f"Graded on public and private tests ({data.get('private_tests', 0)} problems with private tests)."


def failing_tasks(record: dict, results_dir: str | Path | None = None) -> pd.DataFrame:
    from benchkit.store import ResultsStore

    rows = [r for r in ResultsStore(_results(results_dir)).samples(record["run_id"]) if not r["passed"]]
    frame = pd.DataFrame(rows, columns=["task_id", "sample", "category", "result", "tokens"])
    return frame.sort_values(["task_id", "sample"]).reset_index(drop=True)


# ------------------------------------------------------------------------ comparing runs
def comparison(
    results_dir="results",
    benchmark=None,
    run_ids=None,
    models=None,
    interactive: bool = True,
    sweep: str | None = None,
    baseline: str | None = None,
) -> None:
    """The compare notebook's one call: widgets to pick benchmark, models and runs, or, headless
    under papermill (interactive=False), the static comparison of the runs the parameters name
    (with `sweep`: that sweep as one table, every cell against `baseline`)."""
    from IPython.display import display

    enter_project_dir()
    results_dir = _results(results_dir)
    renderer = _use_inline_plotly()
    if interactive:
        renderer.activate()  # plotly.js once, in this cell's output: the figures drawn later need it
        display(comparison_picker(results_dir, benchmark))
    else:
        show_comparison(results_dir, benchmark, run_ids, models, sweep, baseline)


def show_comparison(
    results_dir="results", benchmark=None, run_ids=None, models=None, sweep=None, baseline=None
) -> None:
    from IPython.display import Markdown, display

    for name, runs in report.select(results_dir, benchmark, run_ids, models, sweep).items():
        display(Markdown(f"## {name}: {len(runs)} run(s)"))
        for title, content in report.sections(runs, results_dir, baseline):
            display(Markdown(f"### {title}"))
            with pd.option_context("display.max_colwidth", None):  # verdicts in full
                display(Markdown(f"```\n{content}\n```") if isinstance(content, str) else content)


def comparison_picker(results_dir="results", benchmark=None):
    """Benchmark, then models, then runs; the Compare button draws their comparison below.
    (Drawing on a button, not on every click in a list, keeps a front end responsive.)"""
    import ipywidgets as widgets
    from IPython.display import clear_output

    table = analysis.runs_table(results_dir, finished_only=True)
    benchmarks = sorted(table.benchmark.dropna().unique())
    if not benchmarks or (benchmark is not None and benchmark not in benchmarks):
        raise BenchkitError(
            f"no finished runs{f' of benchmark {benchmark!r}' if benchmark else ''} "
            f"to compare (finished runs exist for: {', '.join(benchmarks) or 'none'})",
            where=str(Path(results_dir) / "benchmark_results.json"),
        )
    pick_benchmark = widgets.Dropdown(
        options=benchmarks, value=benchmark or benchmarks[0], description="benchmark"
    )
    pick_models = widgets.SelectMultiple(description="models", rows=6)
    pick_runs = widgets.SelectMultiple(description="runs", rows=8, layout={"width": "480px"})
    button, output = widgets.Button(description="Compare", button_style="primary"), widgets.Output()

    def benchmark_changed(_=None):
        models = sorted(table[table.benchmark == pick_benchmark.value].model.dropna().unique())
        pick_models.options, pick_models.value = models, tuple(models)

    def models_changed(_=None):
        chosen = table[(table.benchmark == pick_benchmark.value) & table.model.isin(pick_models.value)]
        pick_runs.options = list(zip(chosen.label, chosen.run_id))
        pick_runs.value = tuple(chosen.run_id)

    def draw(_=None):
        with output:
            clear_output(wait=True)
            if pick_runs.value:
                show_comparison(results_dir, run_ids=list(pick_runs.value))

    pick_benchmark.observe(benchmark_changed, "value")
    pick_models.observe(models_changed, "value")
    button.on_click(draw)
    benchmark_changed()
    return widgets.VBox([widgets.HBox([pick_benchmark, pick_models, pick_runs, button]), output])


def _use_inline_plotly():
    """Figures as plotly's JSON (for front ends with a plotly renderer) and as HTML drawn by
    plotly.js inlined once (JupyterLab 4 without extensions, an executed notebook, its HTML
    export: all offline). Returns the HTML renderer."""
    import plotly.io as pio

    renderer = pio.renderers["benchkit_offline"] = _offline_renderer()
    pio.renderers.default = "plotly_mimetype+benchkit_offline"
    return renderer


def _offline_renderer():
    from plotly.io import to_html
    from plotly.io.base_renderers import NotebookRenderer

    class OfflineNotebookRenderer(NotebookRenderer):
        """plotly's notebook renderer without its MathJax script from a CDN (no figure here has
        LaTeX), which an offline browser reports as a failed load; plotly.js is sent once per
        renderer, whoever asks first (the compare picker asks before its first figure)."""

        activated = False

        def activate(self):
            if not self.activated:
                self.activated = True
                super().activate()

        def to_mimebundle(self, fig_dict):
            return {
                "text/html": to_html(
                    fig_dict,
                    config=self.config,
                    include_plotlyjs=False,
                    include_mathjax=False,
                    full_html=False,
                    default_width="100%",
                    default_height=525,
                    validate=False,
                )
            }

    return OfflineNotebookRenderer()


def export_html(notebook: str | Path, output: str | Path | None = None) -> Path:
    """An executed notebook as one HTML page that loads nothing from the network."""
    import nbformat
    from nbconvert import HTMLExporter

    from benchkit.store import atomic_write

    notebook = Path(notebook)
    output = Path(output) if output else notebook.with_suffix(".html")
    exporter = HTMLExporter(mathjax_url="", require_js_url="")
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata.pop("widgets", None)  # live widgets need a kernel; their saved state needs a CDN
    body, _ = exporter.from_notebook_node(nb)
    atomic_write(output, body)
    return output


def execute(config: RunConfig, resume=None, output: Path | None = None, sweep: dict | None = None) -> Path:
    """Run the benchmark's notebook under papermill; the executed copy is the report (`output`,
    default results/reports/<benchmark>-<time>.ipynb). `sweep`: the sweep cell the run is.

    The results directory is checked before the kernel starts (and loads the model). However
    execution ends early (a stop signal, an executed notebook that cannot be written), the
    kernel is interrupted first, so the run in it is marked interrupted and `--resume`
    continues it; the error names the notebook and says what became of the run.
    """
    import json

    import papermill

    from benchkit.store import ResultsStore

    source = NOTEBOOK_DIR / f"{config.benchmark}.ipynb"
    if not source.exists():
        raise ConfigError(f"no notebook for benchmark {config.benchmark!r}", where=str(source))
    store = ResultsStore(config.results_dir)
    store.check_writable()
    output = (
        output
        or Path(config.results_dir) / "reports" / f"{config.benchmark}-{datetime.now():%Y%m%d-%H%M%S}.ipynb"
    )
    parameters = config.model_dump(mode="json") | {"resume": resume, "sweep": sweep}
    kernel = _Kernel(
        json.loads(source.read_text())["metadata"].get("kernelspec", {}).get("name", "python3"), store
    )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        kernel.start(store.dir / "logs" / f"{output.stem}-kernel.log")
        kernel.run(
            lambda km: papermill.execute_notebook(
                str(source),
                str(output),
                parameters=parameters,
                km=km,
                cwd=str(Path.cwd()),
                progress_bar=False,
            )
        )
    except papermill.PapermillExecutionError as exc:
        kind = getattr(errors, exc.ename, None)
        kind = kind if isinstance(kind, type) and issubclass(kind, BenchkitError) else BenchkitError
        raise kind(f"{exc.ename}: {exc.evalue}", where=f"{output} (cell {exc.exec_count})") from None
    except OSError as exc:
        where = exc.filename or str(output)
        try:  # papermill writes in place: never leave a half-written notebook behind
            json.loads(output.read_bytes())
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            output.unlink(missing_ok=True)
            where += " (its half-written copy was removed)"
        error = errors.StoreError(f"cannot write the executed notebook: {exc.strerror or exc}", where=where)
        error.outcome = kernel.outcome
        raise error from None
    return output


class _Kernel:
    """The kernel papermill executes in, owned here so that however execution ends, the kernel
    is interrupted first (its run is marked interrupted) and only then shut down.

    papermill runs on a thread of its own: on the main thread, nbclient would put its own
    SIGINT/SIGTERM handlers in place of benchkit's for the whole execution."""

    def __init__(self, name: str, store):
        from jupyter_client import KernelManager

        self.manager = KernelManager(kernel_name=name, shutdown_wait_time=60)
        self.store, self.outcome = store, None

    def start(self, log: Path) -> None:
        """The kernel's own output (llama.cpp's and ipykernel's logs) goes to `log`, not the terminal."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as fh:
            self.manager.start_kernel(cwd=str(Path.cwd()), stdout=fh, stderr=fh)

    def run(self, execute) -> None:
        import threading

        from benchkit import interrupts

        failure: list[BaseException] = []
        thread = threading.Thread(target=lambda: _catch(execute, self.manager, failure), name="papermill")
        thread.start()
        try:
            thread.join()
        except KeyboardInterrupt as exc:
            with interrupts.deferred():
                self.stop(thread)
            exc.outcome = self.outcome
            raise
        finally:
            with interrupts.deferred():
                self.stop(thread)
        if failure:
            raise failure[0]

    def stop(self, thread) -> None:
        if self.manager.has_kernel:
            pid = self.manager.provisioner.pid if self.manager.provisioner else None
            try:
                self.manager.interrupt_kernel()  # the run in it stops as on Ctrl-C: marked interrupted
            except (RuntimeError, OSError):
                pass  # the kernel is gone already
            thread.join(timeout=120)
            self.manager.shutdown_kernel()
            self.outcome = self.outcome or _run_outcome(self.store, pid)
        thread.join()


def _catch(function, argument, failure: list) -> None:
    try:
        function(argument)
    except BaseException as exc:
        failure.append(exc)


def _run_outcome(store, pid) -> str | None:
    """What became of the run a kernel (process `pid`) made, in the words the CLI uses."""
    try:
        runs = [r for r in store.runs() if r["config"]["machine"].get("pid") == pid] if pid else []
    except BenchkitError:
        return None
    if not runs:
        return None
    run, res = runs[-1], runs[-1].get("results", {})
    if run.get("status") == "complete":
        return f"run {run['run_id']} is complete and stored"
    return (
        f"run {run['run_id']} marked {run.get('status')} with {res.get('samples_done', '?')} of "
        f"{res.get('samples_expected', '?')} samples stored; continue with --resume"
    )
