"""benchkit's notebooks in a real JupyterLab, driven in Debian's chromium by playwright: the
compare pickers, a run's live progress and results, interrupting and restarting the kernel.

The UI is found by the roles and labels Lab and ipywidgets give their controls (menus, the
widgets' labels, the progress bar's role), never by positions."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import nbformat
import psutil
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchkit.analysis import runs_table
from benchkit.config import RunConfig
from benchkit.runner import run
from benchkit.store import ResultsStore
from tests.browser import CHROMIUM, FLAGS, PLOTS, SCREENSHOTS
from tests.conftest import REPO

pytestmark = pytest.mark.slow
MINUTE = 60_000  # playwright waits in milliseconds; the model is slow on a shared 2-core machine


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    results: Path
    screenshots: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A real JupyterLab on a free port with a token, its root a project folder: notebooks/ and
    results/."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: scripts/install.sh installs it (apt-get install chromium)")
    base = tmp_path_factory.mktemp("lab")
    root, results = base / "project", base / "project" / "results"
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BENCHKIT_PROGRESS_SECONDS": "2",
        **{
            name: str(base / "jupyter" / name.lower())
            for name in (
                "JUPYTER_CONFIG_DIR",
                "JUPYTER_RUNTIME_DIR",
                "JUPYTERLAB_SETTINGS_DIR",
                "JUPYTERLAB_WORKSPACES_DIR",
            )
        },
    }
    log = (base / "lab.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.extension_manager=readonly",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(
            lambda: server.poll() is not None or _answers(f"{url}/api/status?token={token}"),
            120,
            "JupyterLab to start",
        )
        assert server.poll() is None, (base / "lab.log").read_text()[-3000:]
        yield Lab(url, token, root, results, base / "screenshots")
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # Lab shuts its kernels down on SIGTERM
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@contextmanager
def notebook_page(lab: Lab, notebook: str):
    """The notebook open in Lab in headless chromium, alone, its kernel idle; console errors kept."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.errors = []
            page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
            page.on("pageerror", lambda exc: page.errors.append(str(exc)))
            # reset: Lab would restore the last page's tabs, and Run All could run one of those
            page.goto(f"{lab.url}/lab/tree/notebooks/{notebook}?reset&token={lab.token}")
            page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=2 * MINUTE)
            try:
                yield page
            except BaseException:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / f"failed-{notebook}.png"))
                raise
        finally:
            browser.close()


def _run_all(page) -> None:
    """Run > Run All Cells, until a cell shows it ran or runs: right after a kernel starts, Lab
    may show it idle before its connection takes requests, and then drops the request."""
    started = page.get_by_text(re.compile(r"^\[[0-9*]+\]:$")).first
    for _ in range(3):
        _menu(page, "Run", "Run All Cells")
        try:
            started.wait_for(timeout=30_000)
        except PlaywrightTimeout:  # ask again
            continue
        return
    raise AssertionError("Run All Cells ran no cell")


def _menu(page, menu: str, item: str) -> None:
    page.get_by_role("menuitem", name=menu, exact=True).click()
    page.get_by_role("menuitem", name=re.compile(rf"^{re.escape(item)}")).click()


def _screenshot(page, lab: Lab, name: str, target=None) -> Path:
    news = page.get_by_role("button", name="No", exact=True)  # Lab's "official Jupyter news?" toast
    if news.is_visible():
        news.click()
    if target is not None:
        target.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
    lab.screenshots.mkdir(parents=True, exist_ok=True)
    path = lab.screenshots / f"{name}.png"
    page.screenshot(path=str(path))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOTS / path.name)
    print(f"screenshot: {path} (and {SCREENSHOTS / path.name})")
    assert path.stat().st_size > 10_000
    return path


def _with_parameters(lab: Lab, source: str, target: str, **values) -> str:
    """A copy of a notebook whose parameters cell ends with these assignments, as a person
    would edit it in Lab."""
    nb = nbformat.read(REPO / "notebooks" / source, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source += "".join(f"\n{name} = {value!r}" for name, value in values.items())
    nbformat.write(nb, lab.root / "notebooks" / target)
    return target


def _plots(page) -> list[dict]:
    page.wait_for_function(
        "document.querySelectorAll('.js-plotly-plot svg.main-svg').length > 0", timeout=2 * MINUTE
    )
    page.wait_for_timeout(1000)  # plotly's last draws
    plots = page.evaluate(PLOTS)
    for plot in plots:
        assert plot["width"] > 0 and plot["height"] > 0 and plot["marks"] > 0, plot
    return plots


def _no_error_outputs(page) -> None:
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
    assert tracebacks == []


@pytest.fixture(scope="module")
def two_runs(lab) -> list[str]:
    """Two real runs of the embedded model in the Lab's results/, answers cut at 8 and 16 tokens."""
    return [
        run(RunConfig(limit=3, max_tokens=tokens, results_dir=lab.results), progress=False)["run_id"]
        for tokens in (8, 16)
    ]


def test_compare_notebook_pickers_and_figures_in_lab(lab, two_runs):
    labels = dict(zip(*[runs_table(lab.results)[c] for c in ("run_id", "label")]))
    with notebook_page(lab, "compare.ipynb") as page:
        _run_all(page)
        runs = page.get_by_label("runs")
        runs.wait_for(timeout=2 * MINUTE)
        assert page.get_by_label("benchmark").input_value() == "human_eval"
        runs.select_option(label=[labels[run_id] for run_id in two_runs])
        page.get_by_role("button", name="Compare", exact=True).click()
        plots = _plots(page)
        assert len(plots) >= 3
        page.get_by_text("McNemar").first.wait_for(timeout=MINUTE)
        text = page.locator(".jp-Notebook").inner_text()
        assert all(run_id in text for run_id in two_runs)
        _no_error_outputs(page)
        _screenshot(page, lab, "lab-compare", page.locator(".js-plotly-plot").first)
        assert page.errors == [], page.errors


def test_human_eval_notebook_shows_live_progress_then_its_results(lab):
    notebook = _with_parameters(lab, "human_eval.ipynb", "human_eval-two.ipynb", limit=2, max_tokens=16)
    with notebook_page(lab, notebook) as page:
        _run_all(page)
        bar = page.get_by_role("progressbar", name=re.compile("benchkit run"))
        bar.wait_for(timeout=5 * MINUTE)
        assert bar.get_attribute("max") == "2"
        _screenshot(page, lab, "lab-human-eval-running", bar)
        seen = _watch(bar, until="2", seconds=600)
        assert seen[-1] == "2" and len(seen) >= 2, seen  # it moved while the run went
        page.get_by_text("2/2", exact=True).wait_for()
        page.get_by_text("score (pass@1 %)").wait_for(timeout=2 * MINUTE)
        assert _plots(page)
        _no_error_outputs(page)
        _screenshot(page, lab, "lab-human-eval", page.locator(".js-plotly-plot").first)
        assert page.errors == [], page.errors
    record = [r for r in ResultsStore(lab.results).runs() if r["config"]["settings"]["limit"] == 2][-1]
    assert record["status"] == "complete" and record["results"]["samples_done"] == 2


def test_interrupting_the_kernel_marks_the_run_interrupted_and_resumable(lab):
    notebook = _with_parameters(lab, "human_eval.ipynb", "human_eval-interrupt.ipynb", limit=3, max_tokens=48)
    store = ResultsStore(lab.results)
    before = {r["run_id"] for r in store.runs()}
    with notebook_page(lab, notebook) as page:
        _run_all(page)
        bar = page.get_by_role("progressbar", name=re.compile("benchkit run"))
        bar.wait_for(timeout=5 * MINUTE)
        _watch(bar, until="1", seconds=600)
        _menu(page, "Kernel", "Interrupt Kernel")
        page.get_by_text("To continue it").wait_for(timeout=2 * MINUTE)
        (record,) = [r for r in store.runs() if r["run_id"] not in before]
        assert record["status"] == "interrupted", record["status"]
        assert page.get_by_text(f"benchkit run --resume {record['run_id']}").count() >= 1
        _screenshot(page, lab, "lab-interrupted", page.get_by_text("To continue it"))
    assert 1 <= record["results"]["samples_done"] < 3
    resumed = run(RunConfig(results_dir=lab.results), resume=record["run_id"], progress=False)
    assert resumed["status"] == "complete" and resumed["results"]["samples_done"] == 3
    assert len(store.samples(record["run_id"])) == 3  # the samples before the interrupt were kept


@pytest.mark.parametrize("backend", ["llama_server", "llama_cpp"])
def test_restarting_the_kernel_leaves_no_server_or_sandbox_behind(lab, backend):
    from benchkit.backends.server_build import find_llama_server

    server = {"server_binary": str(find_llama_server())} if backend == "llama_server" else {}
    notebook = _with_parameters(
        lab,
        "human_eval.ipynb",
        f"human_eval-restart-{backend}.ipynb",
        limit=20,
        max_tokens=48,
        backend=backend,
        **server,
    )
    store = ResultsStore(lab.results)
    before = {r["run_id"] for r in store.runs()}
    with notebook_page(lab, notebook) as page:
        _run_all(page)
        page.get_by_role("progressbar", name=re.compile("benchkit run")).wait_for(timeout=5 * MINUTE)
        (record,) = [r for r in store.runs() if r["run_id"] not in before]
        kernel = psutil.Process(record["config"]["machine"]["pid"])
        processes = [kernel, *kernel.children(recursive=True)]
        assert any("worker.py" in " ".join(p.cmdline()) for p in processes[1:]), processes  # the sandbox
        if backend == "llama_server":
            assert psutil.Process(record["config"]["backend"]["server_pid"]) in processes
        _menu(page, "Kernel", "Restart Kernel…")
        page.get_by_text("Do you want to restart the kernel").wait_for()  # Lab asks to confirm;
        page.keyboard.press("Enter")  # its focused default button is Restart
        _, alive = psutil.wait_procs(processes, timeout=60)
        assert alive == [], [(p.pid, p.cmdline()) for p in alive]
        page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=2 * MINUTE)
    if backend == "llama_server":
        command = record["config"]["backend"]["server_command"]
        assert not _answers(f"http://127.0.0.1:{command[command.index('--port') + 1]}/health")
    assert store.get(record["run_id"])["status"] in ("running", "interrupted", "failed")  # resumable


def _watch(bar, until: str, seconds: float) -> list[str]:
    """The progress bar's values as they change, until it shows `until`."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = bar.get_attribute("value")
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == until:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"the progress bar never showed {until}: {seen}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.5)
