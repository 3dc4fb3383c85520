"""Reading teacher answers: fenced code blocks in markdown."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def code_blocks(text: str, language: str | None = "python") -> list[str]:
    """The contents of every fenced code block (of `language`, or any when None), in order."""
    blocks = []
    for match in _FENCE.finditer(text):
        lang = match.group(1).lower()
        if language is None or lang in (language, "py" if language == "python" else language, ""):
            blocks.append(match.group(2))
    return blocks
