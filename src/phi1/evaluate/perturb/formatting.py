"""`format`: the same code laid out differently (ReCode's format family): blank lines, tab or two-space
indentation (the canonical solution re-indented with the prompt, so it still fits), the signature split one
parameter per line, the docstring written as `#` comments.

Left out from ReCode: splitting arbitrary long lines with backslashes (the prompts' long lines are docstring
prose, where a backslash would change the text).
"""

from __future__ import annotations

import ast
import itertools
import random
import textwrap
import tokenize

from phi1.evaluate.perturb.case import (
    Case,
    Transform,
    docstring_node,
    entry_function,
    indent_of,
    parse,
    split_lines,
    string_lines,
    tokens,
)


def new_lines(case: Case, rng: random.Random) -> Case | None:
    """One to three blank lines at line boundaries of the prompt outside strings."""
    lines = split_lines(case.prompt)
    inside = string_lines(case.prompt)
    spots = [i for i in range(1, len(lines) + 1) if i + 1 not in inside and lines[i - 1].endswith("\n")]
    if not spots:
        return None
    for i in sorted(rng.sample(spots, min(len(spots), rng.randint(1, 3))), reverse=True):
        lines.insert(i, "\n")
    return case.with_(prompt="".join(lines))


def blank_line_after_docstring(case: Case, rng: random.Random) -> Case | None:
    node = docstring_node(case.prompt, case.entry)
    lines = split_lines(case.prompt)
    if node is None or not lines[(node.end_lineno or node.lineno) - 1].endswith("\n"):
        return None
    lines.insert(node.end_lineno or node.lineno, "\n")
    return case.with_(prompt="".join(lines))


def _reindent(case: Case, unit: str) -> Case | None:
    """Prompt and canonical completion re-indented together, one `unit` per block level. Docstrings'
    continuation lines move with their block; any other multi-line string would change, so then None."""
    full = case.prompt + case.reference
    tree = parse(full)
    if tree is None or not case.prompt.endswith("\n"):
        return None
    docs = {n.value.lineno for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    stack = [""]  # the indentation string of each open block, as the code wrote it
    info: dict[int, tuple[int, str]] = {}  # line -> (depth of its logical line, that line's indentation)
    current, at_start = (0, ""), True
    for t in tokens(full):
        if t.type == tokenize.INDENT:
            stack.append(t.string)
        elif t.type == tokenize.DEDENT:
            stack.pop()
        elif t.type == tokenize.NEWLINE:
            at_start = True
        elif t.type == tokenize.COMMENT and at_start:  # a comment line: the deepest block it lines up with
            line = split_lines(full)[t.start[0] - 1]
            info.setdefault(t.start[0], max(((d, p) for d, p in enumerate(stack) if line.startswith(p))))
        elif t.type not in (tokenize.NL, tokenize.ENDMARKER):
            if at_start:
                current, at_start = (len(stack) - 1, stack[-1]), False
            if t.type == tokenize.STRING and t.end[0] > t.start[0] and t.start[0] not in docs:
                return None
            for row in range(t.start[0], t.end[0] + 1):
                info.setdefault(row, current)
    lines = split_lines(full)
    for row, (depth, old) in info.items():
        if lines[row - 1].strip() and lines[row - 1].startswith(old):
            lines[row - 1] = unit * depth + lines[row - 1][len(old) :]
    n = len(split_lines(case.prompt))
    new = case.with_(prompt="".join(lines[:n]), reference="".join(lines[n:]))
    return new if new != case and parse(new.prompt + new.reference) is not None else None


def tab_indent(case: Case, rng: random.Random) -> Case | None:
    return _reindent(case, "\t")


def two_space_indent(case: Case, rng: random.Random) -> Case | None:
    return _reindent(case, "  ")


def split_signature(case: Case, rng: random.Random) -> Case | None:
    """`def f(a, b):` -> one parameter per line, when the prompt holds a one-line signature with two or more."""
    tree = parse(case.prompt)
    fn = entry_function(tree, case.entry) if tree is not None else None
    if fn is None:
        return None
    lines = split_lines(case.prompt)
    line = lines[fn.lineno - 1]
    toks = [t for t in tokens(case.prompt) if t.start[0] == fn.lineno]
    opens = [k for k, t in enumerate(toks) if t.string == "(" and k and toks[k - 1].string == case.entry]
    if not opens:
        return None
    depth, cuts, close = 0, [], None
    for t in toks[opens[0] :]:
        depth += t.string in "([{" and t.type == tokenize.OP
        depth -= t.string in ")]}" and t.type == tokenize.OP
        if depth == 1 and t.string == ",":
            cuts.append(t.start[1])
        if depth == 0:
            close = t.start[1]
            break
    if close is None or not cuts:
        return None
    start = toks[opens[0]].start[1] + 1
    bounds = [start, *(c + 1 for c in cuts), close + 1]
    params = [line[a : b - 1].strip() for a, b in itertools.pairwise(bounds)]
    params = [p for p in params if p]
    if len(params) < 2:
        return None
    ind = indent_of(line)
    body = ind + ("    " if " " in ind or not ind else "\t")
    lines[fn.lineno - 1] = line[:start] + "\n" + ",\n".join(body + p for p in params) + "\n" + ind + line[close:]
    return case.with_(prompt="".join(lines))


def doc2comments(case: Case, rng: random.Random) -> Case | None:
    """The docstring as `#` comment lines at its indentation (ReCode's doc2comments)."""
    node = docstring_node(case.prompt, case.entry)
    if node is None:
        return None
    lines = split_lines(case.prompt)
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    raw = "".join(lines[first : last + 1])
    ind = indent_of(lines[first])
    literal = raw.strip()
    if raw[: len(ind)] != ind or not literal:
        return None
    prefix = len(literal) - len(literal.lstrip("rRuU"))
    quote = literal[prefix : prefix + 3] if literal[prefix : prefix + 3] in ('"""', "'''") else literal[prefix]
    if not literal.endswith(quote) or ast.get_source_segment(case.prompt, node) != literal:
        return None
    inner = literal[prefix + len(quote) : -len(quote)].split("\n")
    body = [inner[0].strip(), *textwrap.dedent("\n".join(inner[1:])).split("\n")]
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    comments = "".join(f"{ind}# {b.rstrip()}\n" if b.strip() else f"{ind}#\n" for b in body)
    lines[first : last + 1] = [comments]
    return case.with_(prompt="".join(lines))


TRANSFORMS: dict[str, Transform] = {
    "new_lines": new_lines,
    "tab_indent": tab_indent,
    "doc2comments": doc2comments,
    "split_signature": split_signature,
    "blank_line_after_docstring": blank_line_after_docstring,
    "two_space_indent": two_space_indent,
}
