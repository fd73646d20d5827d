"""Code extraction from a chat reply: the last fenced block, as LiveCodeBench's runner takes it."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*```[^\n`]*$", re.MULTILINE)


def last_code_block(reply: str, official: bool = False) -> str | None:
    """The content of the last fenced code block; an unclosed final fence counts (output cut short).

    None when the reply has no fence at all. `official=True` is LiveCodeBench's rule exactly:
    any line containing ``` is a fence, the code lies between the last two, fewer than two
    fences means no code.
    """
    if official:
        lines = reply.split("\n")
        fences = [i for i, line in enumerate(lines) if "```" in line]
        return "\n".join(lines[fences[-2] + 1 : fences[-1]]) if len(fences) >= 2 else None
    fences = list(_FENCE.finditer(reply))
    if not fences:
        return None
    if len(fences) % 2 == 1:  # an opening fence never closed: the reply ran out of tokens
        return reply[fences[-1].end() :].strip("\n") + "\n"
    start, end = fences[-2], fences[-1]
    return reply[start.end() : end.start()].strip("\n") + "\n"
