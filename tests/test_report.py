"""Comparisons of real runs made with the embedded model, as people see them: `benchkit report`
and the compare notebook (papermill, exported to HTML), opened in a real headless chromium."""

import json

import nbformat
import papermill
import pytest

from benchkit.analysis import compare, runs_table
from benchkit.config import RunConfig
from benchkit.notebook import comparison_picker, export_html
from benchkit.report import write_report
from benchkit.runner import run
from tests.browser import open_page
from tests.conftest import REPO, benchkit_cli

pytestmark = pytest.mark.slow
COMPARE_NOTEBOOK = REPO / "notebooks" / "compare.ipynb"


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """Greedy HumanEval on the first 30 problems, answers cut at 12 and at 24 tokens: the model's
    short right answers (HumanEval/23, /28 in 9-10 tokens, /29 in 18) make real flips."""
    results = tmp_path_factory.mktemp("compare") / "results"
    records = [
        run(RunConfig(limit=30, max_tokens=tokens, results_dir=results), progress=False)
        for tokens in (12, 24)
    ]
    return results, [r["run_id"] for r in records]


def _check_page(page, expected_plots):
    assert page.errors == [], page.errors
    assert page.network == [], page.network  # self-contained: nothing loaded from the network
    assert len(page.plots) >= expected_plots
    for plot in page.plots:
        assert plot["width"] > 0 and plot["height"] > 0 and plot["marks"] > 0, plot
    assert page.screenshot.stat().st_size > 10_000
    print(f"screenshot: {page.screenshot}")


def test_the_runs_differ_where_the_answers_were_cut(real_runs):
    results, (short, longer) = real_runs
    result = compare(short, longer, results)
    assert result.problems == 30 and result.only_a == 0 and result.only_b >= 1
    assert not result.significant  # one or two flips on 30 problems are noise, and it says so
    table = runs_table(results)
    assert list(table.run_id) == [short, longer]
    assert (table.ci_low <= table.score).all() and (table.score <= table.ci_high).all()


@pytest.mark.needs_chromium
def test_report_opens_in_chromium_with_every_plot_drawn(real_runs, tmp_path):
    results, run_ids = real_runs
    out = tmp_path / "report.html"
    done = benchkit_cli("report", "--results-dir", results, "--out", out)
    assert done.returncode == 0, done.stderr
    page = open_page(out, "report")
    _check_page(page, expected_plots=4)
    titles = [p["title"] for p in page.plots]
    assert any("Per-problem verdicts" in t for t in titles) and any("wall time" in t for t in titles)
    assert all(run_id in page.text for run_id in run_ids)
    assert "McNemar" in page.text and "not significant" in page.text


@pytest.mark.needs_chromium
def test_compare_notebook_runs_headless_and_its_export_opens_in_chromium(real_runs, tmp_path):
    results, run_ids = real_runs
    executed = tmp_path / "compare.ipynb"
    papermill.execute_notebook(
        str(COMPARE_NOTEBOOK),
        str(executed),
        cwd=str(REPO),
        progress_bar=False,
        parameters={"results_dir": str(results), "interactive": False},
    )
    outputs = [o for c in nbformat.read(executed, as_version=4).cells for o in c.get("outputs", [])]
    assert sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs) >= 4
    page = open_page(export_html(executed), "compare-notebook")
    _check_page(page, expected_plots=4)
    assert all(run_id in page.text for run_id in run_ids)


def test_compare_notebook_with_widgets_under_a_real_kernel(real_runs, tmp_path):
    results, _ = real_runs
    executed = tmp_path / "compare-widgets.ipynb"
    papermill.execute_notebook(
        str(COMPARE_NOTEBOOK),
        str(executed),
        cwd=str(REPO),
        progress_bar=False,
        parameters={"results_dir": str(results)},
    )
    nb = nbformat.read(executed, as_version=4)
    views = [
        o
        for c in nb.cells
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(views) == 1
    state = json.dumps(nb.metadata.get("widgets", {}))
    assert "SelectMultiple" in state and "human_eval" in state
    assert "unpkg" not in export_html(executed).read_text()  # the saved widget state needs a CDN


def test_picking_models_and_runs_then_compare(real_runs, capsys):
    results, run_ids = real_runs
    picker = comparison_picker(results)
    pick_benchmark, pick_models, pick_runs, button = picker.children[0].children
    assert pick_benchmark.value == "human_eval" and pick_runs.value == tuple(run_ids)
    pick_models.value = ()
    assert pick_runs.options == () and pick_runs.value == ()
    pick_models.value = ("gemma-3-270m-q4_k_m",)
    pick_runs.value = (run_ids[1],)
    capsys.readouterr()
    button.click()  # outside a kernel the comparison is printed rather than drawn
    shown = capsys.readouterr().out
    assert run_ids[1] in shown and run_ids[0] not in shown and "pass@1 with 95% interval" in shown


def test_report_of_some_runs_only(real_runs, tmp_path):
    results, run_ids = real_runs
    out = write_report(results, tmp_path / "one.html", run_ids=run_ids[:1])
    text = out.read_text()
    assert run_ids[0] in text and run_ids[1] not in text and "Paired comparisons" not in text
