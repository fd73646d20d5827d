"""LiveCodeBench code generation, graded as its official runner grades, scored per problem.

Data: the official files of `livecodebench/code_generation_lite` (test.jsonl … test6.jsonl),
from a path the user gives; nothing is downloaded.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import zlib
from concurrent.futures import Future
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Literal

from benchkit.benchmarks.base import Benchmark, Problem, Prompt
from benchkit.benchmarks.extract import last_code_block
from benchkit.errors import ConfigError, DataError
from benchkit.model_file import file_sha256
from benchkit.sandbox import Job
from benchkit.settings import Settings, setting

WHERE_TO_GET = (
    "LiveCodeBench needs its problem files: pass --problems-file with the official "
    "test.jsonl … test6.jsonl of the Hugging Face dataset livecodebench/code_generation_lite "
    "(a file, several, or their directory); benchkit never downloads them"
)
SYSTEM_MESSAGE = (
    "You are an expert Python programmer. You will be given a question (problem specification) "
    "and will generate a correct Python program that matches the specification and passes all tests."
)
WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and "
    "enclose your code within delimiters."
)
WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly "
    "test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when "
    "the python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT."
)
REQUIRED = (
    "question_id",
    "question_content",
    "platform",
    "contest_date",
    "starter_code",
    "difficulty",
    "public_test_cases",
    "private_test_cases",
    "metadata",
)
_RELEASE_FILE = re.compile(r"^test(\d*)\.jsonl$")
HARNESS = "lcb"  # benchkit/sandbox_worker/lcb_harness.py
RELEASES = Literal[
    "v1",
    "v2",
    "v3",
    "v4",
    "v5",
    "v6",
    "release_v1",
    "release_v2",
    "release_v3",
    "release_v4",
    "release_v5",
    "release_v6",
]


class LCBSettings(Settings):
    """LiveCodeBench's filters and grading option (its problem files are --problems-file)."""

    start_date: date | None = setting(
        None, "only problems from this contest date on (YYYY-MM-DD)", group="data"
    )
    end_date: date | None = setting(None, "only problems up to this contest date (YYYY-MM-DD)", group="data")
    release: RELEASES | None = setting(
        None, "official release window v1 … v6 (release_vN: test.jsonl … testN.jsonl)", group="data"
    )
    platform: Literal["atcoder", "leetcode", "codeforces"] | None = setting(
        None, "only problems of this platform", group="data"
    )
    difficulty: Literal["easy", "medium", "hard"] | None = setting(
        None, "only problems of this difficulty", group="data"
    )
    lcb_corrected: bool = setting(
        False,
        "LiveCodeBench: fix the official grader's known false "
        "negatives (each program is also graded officially)",
        group="data",
    )


class LiveCodeBench(Benchmark):
    name = "lcb"
    default_timeout = 6.0
    time_limit_clock = "own time (wall-clock less waits for a CPU)"  # lcb_harness._MessageReader
    settings = LCBSettings
    stored_details = ("official_passed",)

    def __init__(self, config=None):
        super().__init__(config)
        if config is None or not config.problems_file:
            raise ConfigError(WHERE_TO_GET, where="problems_file")
        self.files = _expand(config.problems_file)

    def problems(self) -> list[Problem]:
        problems = [p for p in _load_all(tuple(self.files)) if _selected(p, self.config)]
        if not problems:
            raise ConfigError("no LiveCodeBench problem matches the filters", where="problems_file")
        return problems

    def describe(self) -> dict:
        problems = self.problems()
        return {
            "problems_files": [str(f) for f in self.files],
            "problems_sha256": {str(f): file_sha256(f) for f in self.files},
            "private_tests": sum(p.data["has_private"] for p in problems),
            "public_tests_only": not any(p.data["has_private"] for p in problems),
        }

    def prompt(self, problem: Problem, style: str) -> Prompt:
        question = official_prompt(problem)
        if style == "chat":
            return [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": question}]
        starter = problem.data["starter_code"]
        return question + "```python\n" + (starter + "\n" if starter else "")

    def stop(self, style: str) -> list[str]:
        return ["```"] if style == "completion" else []

    def completion(self, problem: Problem, output: str, style: str) -> str | None:
        if style == "completion":  # the prompt opened the code block; the answer continues it
            code = (problem.data["starter_code"] + "\n" if problem.data["starter_code"] else "") + output
            return code if output.strip() else None
        code = last_code_block(output, official=True)
        return code if code and code.strip() else None

    def job(self, problem: Problem, completion: str, timeout: float, memory_mb: int) -> Job:
        data = problem.data
        return lcb_job(
            completion,
            data["tests"],
            mode="call" if data["testtype"] == "functional" else "stdio",
            fn_name=data["fn_name"],
            corrected=self.config.lcb_corrected,
            timeout=timeout,
            memory_mb=memory_mb,
        )

    def grade(self, sandbox, job: Job) -> Future:
        """With a corrected comparison, each program also runs under the official one and its
        outcome's details carry that verdict (`official_passed`), so a run says how many changed."""
        if not job.payload["corrected"]:
            return sandbox.submit(job)
        official_job = replace(job, payload={**job.payload, "corrected": False})
        both = [sandbox.submit(job), sandbox.submit(official_job)]
        combined: Future = Future()

        def settle(_):
            if all(f.done() for f in both) and not combined.done():
                try:
                    corrected, official = (f.result() for f in both)
                    details = {**corrected.details, "official_passed": official.passed}
                    combined.set_result(replace(corrected, details=details))
                except BaseException as exc:  # the sandbox itself failed
                    combined.set_exception(exc)

        for future in both:
            future.add_done_callback(settle)
        return combined

    @classmethod
    def summarize(cls, records: list[dict]) -> dict:
        """With a corrected comparison: how many verdicts it changed against official semantics."""
        compared = [r for r in records if "official_passed" in r]
        if not compared:
            return {}
        return {
            "corrected_verdicts_changed": sum(r["passed"] != r["official_passed"] for r in compared),
            "official_samples_passed": sum(r["official_passed"] for r in compared),
        }

    @classmethod
    def selfcheck_programs(cls, timeout: float, memory_mb: int) -> list[tuple[str, Job, str]]:
        """A stdin problem and a LeetCode one, each answered right and wrong, and an endless loop."""
        stdio = (("3 4\n", "7\n"), ("10 -2\n", "8\n"))
        call = (("3\n4", "7"), ("[1, 2]\n[3]", "[1, 2, 3]"))

        def job(source, mode, tests):
            tests = [{"input": i, "output": o} for i, o in tests]
            return lcb_job(source, tests, mode=mode, fn_name="add", timeout=timeout, memory_mb=memory_mb)

        return [
            ("stdin, right", job("a, b = map(int, input().split())\nprint(a + b)", "stdio", stdio), "passed"),
            ("stdin, wrong", job("a, b = map(int, input().split())\nprint(a - b)", "stdio", stdio), "failed"),
            (
                "call, right",
                job("class Solution:\n    def add(self, a, b):\n        return a + b", "call", call),
                "passed",
            ),
            (
                "call, wrong",
                job("class Solution:\n    def add(self, a, b):\n        return a", "call", call),
                "failed",
            ),
            ("endless loop", job("while True:\n    pass", "stdio", stdio[:1]), "timeout"),
        ]


def lcb_job(
    source: str,
    tests: list[dict],
    *,
    mode: str = "stdio",
    fn_name: str | None = None,
    corrected: bool = False,
    timeout: float = 6.0,
    memory_mb: int = 2048,
) -> Job:
    """A LiveCodeBench program for the sandbox's "lcb" harness: `tests` are {"input", "output"}
    pairs; the program sees only the inputs (mode "stdio": on stdin; "call": as the arguments of
    `fn_name`), one test at a time, each with `timeout` seconds, and the worker compares what it
    produced (with `corrected`, also accepting the official grader's known false negatives)."""
    payload = {"mode": mode, "tests": list(tests), "fn_name": fn_name, "corrected": corrected}
    return Job(source, timeout, memory_mb, harness=HARNESS, payload=payload, runs=len(tests))


def official_prompt(problem: Problem) -> str:
    """LiveCodeBench's generic question template."""
    starter = problem.data["starter_code"]
    text = f"### Question:\n{problem.prompt}\n\n"
    if starter:
        text += f"### Format: {WITH_STARTER}\n```python\n{starter}\n```\n\n"
    else:
        text += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)\n\n"


def _expand(paths) -> list[Path]:
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():  # the official test*.jsonl when there are, else every .jsonl
            found = sorted(list(path.glob("test*.jsonl")) or list(path.glob("*.jsonl")), key=_release_order)
            if not found:
                raise ConfigError(f"no .jsonl files in this directory; {WHERE_TO_GET}", where=str(path))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"no such file; {WHERE_TO_GET}", where=str(path))
    return files


def _release_order(path: Path):
    match = _RELEASE_FILE.match(path.name)
    return (0, int(match.group(1) or 1)) if match else (1, path.name)


_CACHE: dict = {}


def _load_all(files: tuple[Path, ...]) -> list[Problem]:
    key = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    if key not in _CACHE:
        seen: dict[str, Problem] = {}
        for path in files:
            for problem in _load_file(path):
                seen.setdefault(problem.task_id, problem)
        _CACHE[key] = list(seen.values())
    return _CACHE[key]


def _load_file(path: Path):
    release = _RELEASE_FILE.match(path.name)
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"not valid JSON ({exc})", where=where) from None
                yield _problem(record, where, int(release.group(1) or 1) if release else None)


def _problem(record: dict, where: str, release: int | None) -> Problem:
    if not isinstance(record, dict):
        raise DataError("expected a JSON object", where=where)
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise DataError(f"missing field(s) {missing}", where=where)
    qid = record["question_id"]
    where = f"{where} ({qid})"
    public = _tests(record["public_test_cases"], where, "public_test_cases")
    private = decode_private_tests(record["private_test_cases"], where)
    tests = public + private
    metadata = _json_field(record["metadata"], where, "metadata") or {}
    testtype = tests[0].get("testtype", "stdin") if tests else "stdin"
    if testtype == "functional" and not metadata.get("func_name"):
        raise DataError("a functional problem needs metadata.func_name", where=where)
    return Problem(
        task_id=qid,
        prompt=record["question_content"],
        difficulty=record["difficulty"],
        data={
            "tests": [{"input": t["input"], "output": t["output"]} for t in tests],
            "testtype": testtype,
            "fn_name": metadata.get("func_name"),
            "starter_code": record["starter_code"] or "",
            "platform": record["platform"],
            "contest_date": str(record["contest_date"])[:10],
            "has_private": bool(private),
            "release": release,
        },
    )


def _tests(value, where: str, field: str) -> list[dict]:
    tests = _json_field(value, where, field) or []
    if not isinstance(tests, list) or not all(
        isinstance(t, dict) and isinstance(t.get("input"), str) and isinstance(t.get("output"), str)
        for t in tests
    ):
        raise DataError(f"{field} must be a list of {{input, output}} strings", where=where)
    return tests


def _json_field(value, where: str, field: str):
    if value is None or value in ("", "None"):
        return None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise DataError(f"{field} is not valid JSON ({exc})", where=where) from None


class _StringsOnly(pickle.Unpickler):
    """An unpickler that can build nothing but plain data: every class lookup is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def decode_private_tests(value, where: str) -> list[dict]:
    """`private_test_cases`: plain JSON, or base64(zlib(pickle(JSON string))) as in the official
    files. The pickle is read with `_StringsOnly`, so a crafted file cannot run code, and only
    a plain string may come out of it."""
    if value is None or value in ("", "None"):
        return []
    if isinstance(value, str) and value.lstrip().startswith("["):
        return _tests(value, where, "private_test_cases")
    try:
        raw = zlib.decompress(base64.b64decode(value, validate=False))
        text = _StringsOnly(io.BytesIO(raw)).load()
    except (ValueError, TypeError, zlib.error, pickle.UnpicklingError, EOFError) as exc:
        raise DataError(f"private_test_cases cannot be decoded safely ({exc})", where=where) from None
    if type(text) is not str:
        raise DataError(
            f"private_test_cases decoded to {type(text).__name__}, expected a JSON string", where=where
        )
    return _tests(text, where, "private_test_cases")


def _selected(problem: Problem, config) -> bool:
    data = problem.data
    day = date.fromisoformat(data["contest_date"])
    if config.start_date and day < config.start_date:
        return False
    if config.end_date and day > config.end_date:
        return False
    if config.platform and data["platform"] != config.platform:
        return False
    if config.difficulty and problem.difficulty != config.difficulty:
        return False
    if config.release:
        if data["release"] is None:
            raise ConfigError(
                "--release needs the official file names (test.jsonl, test2.jsonl, … test6.jsonl) "
                "to tell which release a problem belongs to",
                where="release",
            )
        return data["release"] <= int(config.release.removeprefix("release_").removeprefix("v"))
    return True
