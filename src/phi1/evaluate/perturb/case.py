"""What a perturbation works on: one problem as source text (its prompt, the canonical completion of that
prompt, its test code, its entry point), and the source-level tools the transformations share.

Transformations edit text in place (by token or line position) rather than regenerating code from an AST:
everything a transformation does not mean to change stays byte for byte as the benchmark wrote it.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import random
import re
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from phi1 import pysource


@dataclass(frozen=True)
class Case:
    prompt: str
    reference: str  # the canonical completion of `prompt`
    tests: tuple[str, ...]  # test code that names the entry point (empty for HumanEval+: inputs only)
    entry: str

    def with_(self, **changes: object) -> Case:
        return replace(self, **changes)  # type: ignore[arg-type]


# A transformation gives the changed case, or None where it does not apply to this problem.
Transform = Callable[[Case, random.Random], "Case | None"]

# Neighbouring keys on a QWERTY keyboard, for typos.
KEYBOARD = {
    "q": "wa", "w": "qeas", "e": "wrsd", "r": "etdf", "t": "ryfg", "y": "tugh", "u": "yihj", "i": "uojk",
    "o": "ipkl", "p": "ol", "a": "qwsz", "s": "awedxz", "d": "serfcx", "f": "drtgvc", "g": "ftyhbv",
    "h": "gyujnb", "j": "huikmn", "k": "jiolm", "l": "kop", "z": "asx", "x": "zsdc", "c": "xdfv",
    "v": "cfgb", "b": "vghn", "n": "bhjm", "m": "njk",
}  # fmt: skip

RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))


def tokens(code: str) -> list[tokenize.TokenInfo]:
    """The tokens of `code`, or [] where it does not tokenize (a transformation then does not apply)."""
    try:
        return list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def parse(code: str) -> ast.Module | None:
    try:
        return pysource.parse(code)
    except (SyntaxError, ValueError):
        return None


def names_in(*codes: str) -> set[str]:
    return {t.string for code in codes for t in tokens(code) if t.type == tokenize.NAME}


def fresh_name(wanted: str, taken: set[str]) -> str | None:
    """`wanted` if it is a usable new identifier here: not a keyword or builtin, not already a name."""
    if wanted.isidentifier() and wanted not in RESERVED and wanted not in taken:
        return wanted
    return None


def edit_positions(code: str, edits: list[tuple[int, int, int, str]]) -> str:
    """Apply (line 1-based, start col, end col, new text) edits; columns are str offsets, as tokenize gives."""
    lines = split_lines(code)
    for row, start, end, new in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + new + line[end:]
    return "".join(lines)


def rename(code: str, old: str, new: str, in_calls_of_strings: bool = True) -> str:
    """`old` -> `new` wherever it is a name in the code (not an attribute `x.old`, not a keyword argument's
    name), and in string literals where it is called (`>>> old(1)` in a docstring, `assert old(1)` in MBPP's)."""
    toks = tokens(code)
    edits = []
    for i, t in enumerate(toks):
        if t.type == tokenize.NAME and t.string == old:
            before = toks[i - 1].string if i else ""
            after = toks[i + 1].string if i + 1 < len(toks) else ""
            if before == "." or (after == "=" and _in_call(toks, i)):
                continue
            edits.append((t.start[0], t.start[1], t.end[1], new))
        elif t.type == tokenize.STRING and in_calls_of_strings and old + "(" in t.string:
            edits.extend(_string_edits(t, old, new))
    return edit_positions(code, edits)


def _in_call(toks: list[tokenize.TokenInfo], i: int) -> bool:
    depth = 0
    for t in reversed(toks[:i]):
        if t.string in ")]}":
            depth += 1
        elif t.string in "([{":
            if depth == 0:
                return t.string == "("
            depth -= 1
    return False


def _string_edits(t: tokenize.TokenInfo, old: str, new: str) -> Iterator[tuple[int, int, int, str]]:
    lines = t.string.split("\n")
    for k, line in enumerate(lines):
        row = t.start[0] + k
        offset = t.start[1] if k == 0 else 0
        for m in re.finditer(rf"(?<![\w.]){re.escape(old)}(?=\s*\()", line):
            yield row, offset + m.start(), offset + m.end(), new


def entry_function(tree: ast.Module, entry: str) -> ast.FunctionDef | None:
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry]
    return found[-1] if found else None


def docstring_node(prompt: str, entry: str) -> ast.Expr | None:
    """The entry function's docstring statement, else the module's (MBPP's prompt is a bare docstring)."""
    tree = parse(prompt)
    if tree is None:
        return None
    fn = entry_function(tree, entry)
    for body in ([fn.body] if fn is not None else []) + [tree.body]:
        first = body[0] if body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            return first
    return None


def string_lines(code: str) -> set[int]:
    """Lines (1-based) that lie inside a multi-line string after its first line: no text may be added there."""
    inside = set()
    for t in tokens(code):
        if t.type == tokenize.STRING and t.end[0] > t.start[0]:
            inside.update(range(t.start[0] + 1, t.end[0] + 1))
    return inside


def split_lines(code: str) -> list[str]:
    """Lines with their ends, numbered as tokenize and ast number them (str.splitlines also splits at form
    feeds and other separators that Python's tokenizer does not count)."""
    parts = code.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]
