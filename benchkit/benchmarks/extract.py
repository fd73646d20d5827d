"""Code extraction from a chat reply: the last fenced block, as LiveCodeBench's runner takes it."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*```[^\n`]*$", re.MULTILINE)


def last_code_block(reply: str) -> str | None:
    """The content of the last fenced code block; an unclosed final fence counts (output cut short).

    None when the reply has no fence at all.
    """
    fences = list(_FENCE.finditer(reply))
    if not fences:
        return None
    if len(fences) % 2 == 1:  # an opening fence never closed: the reply ran out of tokens
        return reply[fences[-1].end() :].strip("\n") + "\n"
    start, end = fences[-2], fences[-1]
    return reply[start.end() : end.start()].strip("\n") + "\n"
