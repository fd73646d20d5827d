"""Stop runaway answers: a model caught in a loop, recognised while it generates.

Base models decoding greedily often fall into a loop they never leave: the same line, or the
same block of a few lines, again and again, or an endless tail of blank or comment-only lines,
until the token cap. The tokens after the loop began change nothing but the wall time. A
`LoopDetector` is fed the answer's text as it streams (any chunking); it looks only at
completed lines, so its cost is per line, not per token. When it recognises a loop it names
the rule that fired, and the answer ends at the end of that line, to be graded as it stands.

Rules (thresholds in `RunawayRule`, recorded with every run):
- repeat: the last `repeats` blocks of `p` lines (1 <= p <= `max_period`) are identical, and
  the block holds at least one non-blank line;
- counter: the same, with every number in a line read as the same number (`elif x[7] < 0:` …
  `elif x[8] < 0:`), at `counter_repeats` copies: a model counting up in a loop it never leaves;
- filler: the last `filler_lines` lines are all blank or comment-only.

    python -m benchkit.runaway --analyse results/samples/<run_id>.jsonl

measures, on the stored outputs of a run made without the rule, where each rule would have
stopped each answer, whether an answer ever left such a loop and wrote more code before its
end, and how many tokens the rule would have saved.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

_COMMENT = re.compile(r"^\s*(#.*)?$")  # blank, or a comment and nothing else
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class RunawayRule:
    """When an answer counts as a loop. Chosen on stored greedy HumanEval outputs (see the
    module's `--analyse`): no answer there left a loop this long and then wrote code."""

    repeats: int = 6  # identical consecutive copies of a line or block
    max_period: int = 8  # longest block, in lines
    counter_repeats: int = 12  # the same, with every number read as the same number
    filler_lines: int = 12  # consecutive blank or comment-only lines

    def as_config(self) -> dict:
        return {"rule": "repeat, counter or filler (benchkit.runaway)", **asdict(self)}


@dataclass(frozen=True)
class Loop:
    """Where and why the detector stopped an answer: `end` is the length of the text kept."""

    reason: str  # "repeat", "counter" or "filler"
    detail: str
    end: int
    first_line: int = 0  # index of the line where the loop's first copy begins


class LoopDetector:
    """Feed an answer's text chunk by chunk; `feed` returns a Loop once one is recognised."""

    def __init__(self, rule: RunawayRule = RunawayRule()):
        self.rule = rule
        self.lines: list[str] = []
        self.shapes: list[str] = []  # the lines with every number replaced by 0
        self.text_length = 0  # characters of completed lines, newlines included
        self.partial = ""
        self.filler_run = 0

    def feed(self, chunk: str) -> Loop | None:
        if "\n" not in chunk:
            self.partial += chunk
            return None
        *complete, self.partial = (self.partial + chunk).split("\n")
        for line in complete:
            self.text_length += len(line) + 1
            loop = self._line(line.rstrip())
            if loop is not None:
                return loop
        return None

    def _line(self, line: str) -> Loop | None:
        self.lines.append(line)
        self.shapes.append(_NUMBER.sub("0", line))
        self.filler_run = self.filler_run + 1 if _COMMENT.match(line) else 0
        if self.filler_run >= self.rule.filler_lines:
            return Loop(
                "filler",
                f"{self.filler_run} blank or comment-only lines",
                self.text_length,
                len(self.lines) - self.filler_run,
            )
        for reason, lines, repeats in (
            ("repeat", self.lines, self.rule.repeats),
            ("counter", self.shapes, self.rule.counter_repeats),
        ):
            period = _repeated_period(lines, repeats, self.rule.max_period)
            if period:
                return Loop(
                    reason,
                    f"a block of {period} line(s) repeated {repeats} times",
                    self.text_length,
                    len(lines) - period * repeats,
                )
        return None


def _repeated_period(lines: list[str], repeats: int, max_period: int) -> int:
    """The shortest p such that the last `repeats` blocks of p lines are equal (0: none)."""
    for period in range(1, max_period + 1):
        if len(lines) < period * repeats:
            break
        block = lines[-period:]
        if not any(block):
            continue  # blank lines are the filler rule's
        if all(lines[-(k + 1) * period : len(lines) - k * period] == block for k in range(1, repeats)):
            return period
    return 0


def rule_of(config) -> RunawayRule | None:
    """The rule a run uses: None when the run turned it off (`stop_runaway: false`)."""
    return RunawayRule() if getattr(config, "stop_runaway", True) else None


def describe(config) -> dict:
    """What a run records about the rule."""
    rule = rule_of(config)
    return {"runaway_rule": rule.as_config() if rule else None}


def find_loop(text: str, rule: RunawayRule = RunawayRule()) -> Loop | None:
    """Where the detector would have stopped this text as it was generated (None: nowhere).
    A last line without its newline was never complete, so it cannot end a loop."""
    return LoopDetector(rule).feed(text)


def analyse(samples_path: Path, rule: RunawayRule = RunawayRule()) -> dict:
    """How the answers of a run made without the rule end, and what the rule would change."""
    rows = [json.loads(line) for line in samples_path.read_text().splitlines() if line.strip()]
    summary = {
        "samples": len(rows),
        "at_cap": 0,
        "stopped": 0,
        "stopped_at_cap": 0,
        "stopped_not_at_cap": 0,
        "left_loop_then_code": 0,
        "tokens": 0,
        "chars_total": 0,
        "chars_kept": 0,
        "by_reason": {},
        "left_loop_tasks": [],
        "loop_first_line": [],
        "chars_before_loop": [],
    }
    for row in rows:
        text, at_cap = row.get("output") or "", row.get("finish_reason") == "length"
        summary["at_cap"] += at_cap
        summary["tokens"] += row.get("tokens", 0)
        summary["chars_total"] += len(text)
        loop = find_loop(text, rule)
        if loop is None:
            summary["chars_kept"] += len(text)
            continue
        summary["stopped"] += 1
        summary["stopped_at_cap" if at_cap else "stopped_not_at_cap"] += 1
        summary["by_reason"][loop.reason] = summary["by_reason"].get(loop.reason, 0) + 1
        summary["chars_kept"] += loop.end
        summary["loop_first_line"].append(loop.first_line)
        summary["chars_before_loop"].append(
            len("".join(line + "\n" for line in text.split("\n")[: loop.first_line]))
        )
        if _code_after_loop(text, loop):
            summary["left_loop_then_code"] += 1
            summary["left_loop_tasks"].append(row["task_id"])
    return summary


def _code_after_loop(text: str, loop: Loop) -> bool:
    """Did the answer, after the point where the rule fires, ever write a line that is not one
    of the loop's own lines, numbers aside (or blank/comment filler)? That is an answer that left
    its loop."""
    seen = {_NUMBER.sub("0", line.rstrip()) for line in text[: loop.end].splitlines()[-64:]}
    after = text[loop.end :].splitlines()
    complete = after[:-1] if not text.endswith("\n") else after  # the last line may be cut mid-way
    return any(_NUMBER.sub("0", line.rstrip()) not in seen and not _COMMENT.match(line) for line in complete)


def sweep(samples_path: Path, rule: RunawayRule = RunawayRule()) -> list[dict]:
    """Each rule alone at several thresholds: answers stopped, and of those, answers that had
    left the loop and written more code before their end (what a threshold must never cut)."""
    off = 10**6
    table = []
    for repeats in range(2, 13):
        one = RunawayRule(repeats=repeats, max_period=rule.max_period, counter_repeats=off, filler_lines=off)
        table.append({"rule": "repeat", "threshold": repeats, **_counts(analyse(samples_path, one))})
    for repeats in (4, 6, 8, 10, 12, 16, 20):
        one = RunawayRule(repeats=off, max_period=rule.max_period, counter_repeats=repeats, filler_lines=off)
        table.append({"rule": "counter", "threshold": repeats, **_counts(analyse(samples_path, one))})
    for filler in (3, 4, 5, 6, 8, 10, 12, 16, 20):
        one = RunawayRule(repeats=off, max_period=rule.max_period, counter_repeats=off, filler_lines=filler)
        table.append({"rule": "filler", "threshold": filler, **_counts(analyse(samples_path, one))})
    return table


def _counts(summary: dict) -> dict:
    keys = ("stopped", "stopped_at_cap", "stopped_not_at_cap", "left_loop_then_code", "left_loop_tasks")
    saved = 1 - summary["chars_kept"] / max(summary["chars_total"], 1)
    return {**{k: summary[k] for k in keys}, "chars_saved": round(saved, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--analyse", type=Path, required=True, metavar="SAMPLES_JSONL")
    parser.add_argument("--repeats", type=int, default=RunawayRule.repeats)
    parser.add_argument("--counter-repeats", type=int, default=RunawayRule.counter_repeats)
    parser.add_argument("--filler-lines", type=int, default=RunawayRule.filler_lines)
    parser.add_argument("--max-period", type=int, default=RunawayRule.max_period)
    args = parser.parse_args(argv)
    rule = RunawayRule(args.repeats, args.max_period, args.counter_repeats, args.filler_lines)
    summary = analyse(args.analyse, rule)
    print(f"rule {rule.as_config()} on {args.analyse}:")
    starts = sorted(summary.pop("loop_first_line"))
    before = sorted(summary.pop("chars_before_loop"))
    print(json.dumps(summary))
    if starts:
        print(
            f"where loops start: line {starts[len(starts) // 2]} of the answer (median), "
            f"{sum(s == 0 for s in starts)}/{len(starts)} from the first line; characters before the "
            f"loop median {before[len(before) // 2]}, max {before[-1]}"
        )
    print("\neach rule alone, by threshold (left = answers that left the loop and wrote more code):")
    print(
        f"{'rule':7} {'thr':>4} {'stopped':>8} {'at cap':>7} {'not cap':>8} {'left':>5} {'chars saved':>12}  left in"
    )
    for row in sweep(args.analyse, rule):
        print(
            f"{row['rule']:7} {row['threshold']:4d} {row['stopped']:8d} {row['stopped_at_cap']:7d} "
            f"{row['stopped_not_at_cap']:8d} {row['left_loop_then_code']:5d} {row['chars_saved']:12.3f}  "
            f"{' '.join(row['left_loop_tasks'][:6])}"
        )


if __name__ == "__main__":
    main()
