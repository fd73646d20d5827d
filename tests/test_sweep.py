"""Sweep files: cells, validation before anything runs, states, idempotent local runs."""

import json
import signal
import subprocess
import sys
import time

import pytest

from benchkit.errors import ConfigError
from benchkit.executors import Options
from benchkit.executors.local import run_sweep
from benchkit.store import ResultsStore
from benchkit.sweep import cell_states, load_sweep, plan_table
from tests.conftest import REPO, benchkit_cli
from tests.test_scripted import reply, write_script


def sweep_file(tmp_path, text: str):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def scripts(tmp_path):
    """Two scripted "models": one answers every problem right, one every problem wrong."""
    right = write_script(tmp_path / "right.jsonl", *[reply(i, sample=s) for i in range(3) for s in range(2)])
    wrong = write_script(
        tmp_path / "wrong.jsonl",
        *[reply(i, sample=s, output="    return 0\n") for i in range(3) for s in range(2)],
    )
    return right, wrong


def two_by_two(tmp_path, scripts, extra=""):
    right, wrong = scripts
    return sweep_file(
        tmp_path,
        f"""
name: t
benchmarks: {{human_eval: {{limit: 3}}}}
models:
  - {{backend: scripted, script: {right}}}
  - {{backend: scripted, script: {wrong}}}
grid: {{num_samples: [1, 2]}}
fixed: {{grade_workers: 2, temperature: 0.5}}
{extra}""",
    )


def test_cells_are_the_product_less_the_excluded(tmp_path, scripts):
    sweep = load_sweep(two_by_two(tmp_path, scripts, "exclude: [{model: wrong, num_samples: 2}]"), tmp_path)
    assert [c.name for c in sweep.cells] == [
        "human_eval/right/num_samples=1",
        "human_eval/right/num_samples=2",
        "human_eval/wrong/num_samples=1",
    ]
    assert sweep.cells[1].config.num_samples == 2 and sweep.cells[1].config.temperature == 0.5


def test_sweep_runs_once_then_skips_and_reports_each_cell(tmp_path, scripts, grading_pool):
    path = two_by_two(tmp_path, scripts)
    sweep = load_sweep(path, tmp_path / "results")
    records = run_sweep(sweep, Options(tmp_path / "results", progress=False, pool=grading_pool))
    assert [r["results"]["score"] for r in records] == [100.0, 100.0, 0.0, 0.0]
    assert [r["sweep"] for r in records] == [{"name": "t", "cell": c.name} for c in sweep.cells]
    store = ResultsStore(tmp_path / "results")
    assert {s.state for s in cell_states(sweep, store)} == {"done"}
    before = store.file.read_text()
    again = run_sweep(sweep, Options(tmp_path / "results", progress=False, pool=grading_pool))
    assert [r["run_id"] for r in again] == [r["run_id"] for r in records] and store.file.read_text() == before
    assert "4 cells, 4 done; 0 samples left" in plan_table(sweep, store)


def test_a_partial_cell_resumes_and_a_changed_setting_is_a_new_cell(tmp_path, scripts, grading_pool):
    right, _ = scripts
    write_script(right, reply(0), reply(1, error="fatal"), reply(2))
    path = two_by_two(tmp_path, scripts, "exclude: [{num_samples: 2}]")
    sweep = load_sweep(path, tmp_path / "results")
    with pytest.raises(Exception, match="1 of 2 cells failed"):
        run_sweep(sweep, Options(tmp_path / "results", progress=False, pool=grading_pool))
    store = ResultsStore(tmp_path / "results")
    states = {s.cell.name: s for s in cell_states(sweep, store)}
    assert (
        states["human_eval/right/num_samples=1"].state,
        states["human_eval/right/num_samples=1"].samples_done,
    ) == ("partial", 1)
    assert "partial 1/3" in plan_table(sweep, store)
    write_script(right, reply(0), reply(1), reply(2))
    records = run_sweep(sweep, Options(tmp_path / "results", progress=False, pool=grading_pool))
    assert records[0]["run_id"] == states["human_eval/right/num_samples=1"].run_id
    assert len(store.samples(records[0]["run_id"])) == 3  # nothing generated twice
    changed = load_sweep(
        sweep_file(tmp_path, path.read_text().replace("temperature: 0.5", "temperature: 0.6")),
        tmp_path / "results",
    )
    assert {s.state for s in cell_states(changed, store)} == {"new"}


@pytest.mark.parametrize(
    "text,where,message",
    [
        (
            "name: t\nbenchmarks: {human_eval: {}}\nmodels: [embedded]\ngrid: {max_tokenz: [1]}\n",
            "grid.max_tokenz",
            "unknown setting 'max_tokenz'",
        ),
        (
            "name: t\nbenchmarks: {human_eval: {}}\nmodels: [embedded]\ngrid: {max_tokens: [big]}\n",
            "cell human_eval/embedded/max_tokens=big",
            "max_tokens",
        ),
        (
            "name: t\nbenchmarks: {mbpp: {}}\nmodels: [embedded]\n",
            "cell mbpp/embedded",
            "unknown benchmark 'mbpp'",
        ),
        ("name: t\nbenchmarks: {human_eval: {}}\nmodels: [/nope/m.gguf]\n", "models[0]", "does not exist"),
        ("name: t\nbenchmarks: {human_eval: {}}\nmodels: [/nope/*.gguf]\n", "models[0]", "no file matches"),
        (
            "name: t\nbenchmarks: {human_eval: {model: x}}\nmodels: [embedded]\n",
            "benchmarks.human_eval.model",
            "set by the sweep's structure",
        ),
        ("name: t\nbenchmark: {human_eval: {}}\nmodels: [embedded]\n", "benchmark", "unknown key"),
        ("name: t\nbenchmarks: {human_eval: {}}\nmodels: []\n", "models", "at least 1 item"),
        (
            "name: t\nbenchmarks: {human_eval: {}}\nmodels: [embedded]\nexclude: [{model: embedded}]\n",
            "exclude",
            "every cell is excluded",
        ),
    ],
)
def test_bad_sweep_files_are_named_before_anything_runs(tmp_path, text, where, message):
    path = sweep_file(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_sweep(path, tmp_path / "results")
    assert f"{path}: {where}" in str(exc.value) and message in str(exc.value)
    done = benchkit_cli("sweep", path, "--results-dir", tmp_path / "results")
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


def test_bad_gguf_in_a_glob_is_named(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "fake.gguf").write_bytes(b"not a model")
    path = sweep_file(
        tmp_path, f"name: t\nbenchmarks: {{human_eval: {{}}}}\nmodels: [{tmp_path}/models/*.gguf]\n"
    )
    with pytest.raises(ConfigError, match=r"models\[0\]: .*fake.gguf: not a GGUF file"):
        load_sweep(path)


@pytest.mark.slow
def test_ctrl_c_marks_the_current_cell_interrupted_and_a_rerun_completes_it(tmp_path, scripts):
    right, _ = scripts
    gate = tmp_path / "gate"
    write_script(right, reply(0), reply(1, wait_for=str(gate)), reply(2))
    path = two_by_two(tmp_path, scripts, "exclude: [{num_samples: 2}, {model: wrong}]")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchkit",
            "sweep",
            str(path),
            "--quiet",
            "--results-dir",
            str(tmp_path / "results"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(p.read_text() for p in (tmp_path / "results").glob("samples/*.jsonl")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    (record,) = ResultsStore(tmp_path / "results").runs()
    assert record["status"] == "interrupted" and record["sweep"]["cell"] == "human_eval/right/num_samples=1"
    gate.touch()
    done = benchkit_cli("sweep", path, "--quiet", "--results-dir", tmp_path / "results")
    assert done.returncode == 0, done.stderr
    (record,) = ResultsStore(tmp_path / "results").runs()
    assert record["status"] == "complete" and record["results"]["samples_done"] == 3


def test_shipped_example_is_valid():
    sweep = load_sweep(REPO / "parameters" / "sweep-example.yaml")
    assert len(sweep.cells) == 2 and json.dumps([c.name for c in sweep.cells])


@pytest.mark.slow
def test_a_sweep_is_one_table_with_every_cell_against_a_baseline(tmp_path, scripts, grading_pool):
    from benchkit.analysis import against_baseline, runs_table

    sweep = load_sweep(two_by_two(tmp_path, scripts), tmp_path / "results")
    run_sweep(sweep, Options(tmp_path / "results", progress=False, pool=grading_pool))
    runs = runs_table(tmp_path / "results", sweep="t")
    assert list(runs.cell) == [c.name for c in sweep.cells] and "tokens_s" in runs
    versus = against_baseline(runs, "human_eval/right/num_samples=1", tmp_path / "results")
    assert list(versus.cell) == [c.name for c in sweep.cells[1:]]
    assert list(versus.difference) == [0.0, -100.0, -100.0]
    assert (versus.p_holm >= versus.p_value).all() and versus.verdict.str.endswith("(Holm)").all()
    with pytest.raises(Exception, match="no run or cell 'nope'"):
        against_baseline(runs, "nope", tmp_path / "results")
    listed = benchkit_cli("runs", "--sweep", "t", "--results-dir", tmp_path / "results")
    assert listed.returncode == 0 and "human_eval/wrong/num_samples=2" in listed.stdout
    out = tmp_path / "sweep.html"
    done = benchkit_cli(
        "report",
        "--sweep",
        "t",
        "--baseline",
        "human_eval/wrong/num_samples=1",
        "--results-dir",
        tmp_path / "results",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert "Sweep t" in page and "Holm" in page and "pass@1 by model and quant" in page


def test_holm_correction_matches_the_textbook():
    from statsmodels.stats.multitest import multipletests

    assert list(multipletests([0.01, 0.04, 0.03], method="holm")[1]) == pytest.approx([0.03, 0.06, 0.06])


@pytest.mark.slow
def test_notebook_batch_saves_each_cell_and_an_index(tmp_path, scripts):
    import nbformat

    path = two_by_two(tmp_path, scripts, "exclude: [{num_samples: 2}]")
    done = benchkit_cli("sweep", path, "--notebook", "--quiet", "--results-dir", tmp_path / "results")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "results" / "reports" / "t"
    notebooks = sorted(p.name for p in folder.glob("*.ipynb"))
    assert notebooks == ["human_eval__right__num_samples=1.ipynb", "human_eval__wrong__num_samples=1.ipynb"]
    executed = nbformat.read(folder / notebooks[0], as_version=4)
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    index = (folder / "index.md").read_text()
    assert (
        "| human_eval/right/num_samples=1 | done | 100.00 | [human_eval__right__num_samples=1.ipynb]" in index
    )
    runs = ResultsStore(tmp_path / "results").runs()
    assert sorted(r["sweep"]["cell"] for r in runs) == [
        "human_eval/right/num_samples=1",
        "human_eval/wrong/num_samples=1",
    ]


@pytest.mark.slow
def test_compare_notebook_shows_a_sweep(tmp_path, scripts, grading_pool):
    import papermill

    sweep = load_sweep(two_by_two(tmp_path, scripts), tmp_path / "results")
    run_sweep(sweep, Options(tmp_path / "results", progress=False, pool=grading_pool))
    out = tmp_path / "compare.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "compare.ipynb"),
        str(out),
        cwd=str(REPO),
        parameters={
            "results_dir": str(tmp_path / "results"),
            "interactive": False,
            "sweep": "t",
            "baseline": "human_eval/wrong/num_samples=2",
        },
        progress_bar=False,
    )
    text = out.read_text()
    assert "Sweep t" in text and "against wrong" in text and "not significant (Holm)" in text


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
def test_local_sweep_frees_each_model_before_the_next(tmp_path):
    """The embedded model (241 MiB) is loaded for each cell and freed after it: once the first
    cell has loaded the libraries for good, this process's memory after each cell is back to its
    level before that cell, although it rose by about a model while the cell ran."""
    import threading

    from benchkit.grading import GradingPool
    from benchkit.runner import Context, run

    path = sweep_file(
        tmp_path,
        "name: mem\nbenchmarks: {human_eval: {limit: 1}}\nmodels: [embedded]\n"
        "grid: {max_tokens: [8, 9, 10]}\nfixed: {grade_workers: 1}\n",
    )
    sweep = load_sweep(path, tmp_path / "results")
    peak, done = [0.0], threading.Event()

    def sample():
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mb())

    threading.Thread(target=sample, daemon=True).start()
    levels = []  # (before the cell, its peak, after it)
    with GradingPool(1) as pool:
        for cell in sweep.cells:
            before, peak[0] = _rss_mb(), 0.0
            run(
                cell.config,
                progress=False,
                context=Context(pool=pool, sweep={"name": "mem", "cell": cell.name}),
            )
            levels.append((before, peak[0], _rss_mb()))
    done.set()
    for before, top, after in levels[1:]:
        assert top > before + 150, levels  # a model was in memory during the cell
        assert after < before + 20, levels  # and gone after it


@pytest.mark.slow
@pytest.mark.needs_chromium
def test_sweep_report_opens_in_chromium_with_its_figures(tmp_path, scripts, grading_pool):
    from benchkit.report import write_report
    from tests.browser import open_page

    sweep = load_sweep(two_by_two(tmp_path, scripts), tmp_path / "results")
    run_sweep(sweep, Options(tmp_path / "results", progress=False, pool=grading_pool))
    page = open_page(write_report(tmp_path / "results", tmp_path / "sweep.html", sweep="t"), "sweep-report")
    assert page.errors == [] and page.network == []
    titles = [plot["title"] for plot in page.plots]
    assert "pass@1 by model and quant" in titles and all(p["marks"] > 0 for p in page.plots)
    assert "Sweep t" in page.text and "Holm" in page.text and page.screenshot.exists()
