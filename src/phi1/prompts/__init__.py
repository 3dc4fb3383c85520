"""The prompts phi1 sends to a teacher, one file each, published as they are.

Templates use `${field}` placeholders. `identify` and `extract` read a rendered prompt back: the offline
teacher answers from the prompt text alone, as a real LLM would.

Public API: `template`, `render`, `identify`, `extract`, `NAMES`.
"""

from __future__ import annotations

import re
import string
from functools import cache
from importlib import resources

from phi1.errors import Phi1Error

NAMES = ("annotate", "textbook", "exercise", "repair", "grade", "judge")


@cache
def template(name: str) -> str:
    if name not in NAMES:
        raise Phi1Error(f"unknown prompt {name!r}: one of {', '.join(NAMES)}")
    return (resources.files(__package__) / f"{name}.md").read_text(encoding="utf-8")


def render(name: str, **fields: object) -> str:
    try:
        return string.Template(template(name)).substitute({k: str(v) for k, v in fields.items()})
    except KeyError as exc:
        raise Phi1Error(f"prompt {name!r} needs field {exc.args[0]!r}") from None


@cache
def _pattern(name: str) -> re.Pattern[str]:
    parts = re.split(r"\$\{(\w+)\}", template(name))
    regex, seen = "", set()
    for i, part in enumerate(parts):
        if i % 2 == 0:
            regex += re.escape(part)
        elif part in seen:
            regex += f"(?P={part})"
        else:
            regex += f"(?P<{part}>.*?)"
            seen.add(part)
    return re.compile(regex + r"\Z", re.DOTALL)


def identify(text: str) -> str | None:
    """Which template a prompt was rendered from, if any."""
    for name in NAMES:
        if _pattern(name).match(text):
            return name
    return None


def extract(name: str, text: str) -> dict[str, str]:
    match = _pattern(name).match(text)
    if match is None:
        raise Phi1Error(f"text was not rendered from the {name!r} prompt")
    return match.groupdict()
