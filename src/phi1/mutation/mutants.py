"""AST mutants of a reference solution: one small change each (an operator, a constant, a slice bound, a
returned value, a statement removed), the wrong programs a strong test suite rejects.

Each mutant is the reference's own text with one node's span replaced, so everything else (the prompt, the
comments, the formatting) stays byte for byte and its diff is one or two lines. Only code inside function
bodies is mutated, and only from `first_line` on (the solution after a benchmark's prompt); docstrings,
annotations and f-strings are left alone. A replaced expression is parenthesised, so a swapped operator never
changes how its neighbours bind. The choice is seeded and capped, spread over the kinds of change.
"""

from __future__ import annotations

import ast
import copy
import difflib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from phi1 import pysource

FORMAT = 1  # bump when the same code and seed would give other mutants

_BINOP_SWAPS: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.FloorDiv, ast.Add),
    ast.Div: (ast.Mult,),
    ast.FloorDiv: (ast.Mult, ast.Div),
    ast.Mod: (ast.FloorDiv,),
    ast.Pow: (ast.Mult,),
    ast.BitAnd: (ast.BitOr,),
    ast.BitOr: (ast.BitAnd,),
    ast.BitXor: (ast.BitOr,),
    ast.LShift: (ast.RShift,),
    ast.RShift: (ast.LShift,),
}
# The boundary shift and the negation of each comparison.
_COMPARE_SWAPS: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.GtE),
    ast.LtE: (ast.Lt, ast.Gt),
    ast.Gt: (ast.GtE, ast.LtE),
    ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
KINDS = ("arithmetic", "comparison", "boolean", "constant", "slice", "return", "statement")


@dataclass(frozen=True)
class Mutant:
    kind: str  # one of KINDS
    line: int  # where the change starts, 1-based in the mutated code
    source: str  # the whole program with this one change

    @property
    def valid(self) -> bool:
        """It parses (the sandbox compiles it before running it, and counts one that does not apart)."""
        return pysource.compiles(self.source)

    def diff(self, original: str) -> str:
        """The change as unified-diff lines, without file headers."""
        lines = difflib.unified_diff(original.splitlines(), self.source.splitlines(), lineterm="", n=0)
        return "\n".join(line for line in lines if not line.startswith(("---", "+++")))


def mutants(code: str, first_line: int = 1, limit: int | None = 30, seed: int = 0) -> list[Mutant]:
    """The distinct mutants of `code`, at most `limit` of them (None: all), chosen by `seed` round-robin over
    the kinds of change, in the order of their position in the code. Code that does not parse has none."""
    try:
        tree = pysource.parse(code)
    except (SyntaxError, ValueError):
        return []
    raw = code.encode("utf-8")
    starts = _line_starts(raw)
    seen: set[tuple[int, int, bytes]] = set()
    sites: list[tuple[str, int, int, int, bytes]] = []  # kind, line, byte span, replacement
    for kind, node, text in _sites(tree, first_line):
        start = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
        key = (start, end, text.encode("utf-8"))
        if key not in seen and raw[start:end] != key[2]:
            seen.add(key)
            sites.append((kind, node.lineno, *key))
    # Only the chosen are spliced and compiled: a long solution has hundreds of sites.
    out = []
    for kind, line, start, end, text in _choose(sites, limit, seed):
        source = (raw[:start] + text + raw[end:]).decode("utf-8")
        out.append(Mutant(kind, line, source))
    return out


def _choose(found: list[tuple[str, int, int, int, bytes]], limit: int | None, seed: int) -> list:
    if limit is None or len(found) <= limit:
        return found
    rng = random.Random(seed)
    by_kind: dict[str, list[int]] = {}
    for i, site in enumerate(found):
        by_kind.setdefault(site[0], []).append(i)
    queues = [rng.sample(ids, len(ids)) for _, ids in sorted(by_kind.items())]
    chosen: list[int] = []
    while len(chosen) < limit:
        for q in queues:
            if q and len(chosen) < limit:
                chosen.append(q.pop())
    return [found[i] for i in sorted(chosen)]


def _line_starts(raw: bytes) -> list[int]:
    # ast's column offsets count UTF-8 bytes.
    starts, pos = [0], 0
    for line in raw.splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return starts


def _sites(tree: ast.Module, first_line: int) -> Iterator[tuple[str, ast.AST, str]]:
    """(kind, node whose span is replaced, replacement text) for every change, in source order."""
    sites: list[tuple[int, int, str, ast.AST, str]] = []
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            body = func.body[1:] if _docstring(func) else func.body
            for stmt in body:
                for kind, node, text in _statement_sites(stmt):
                    if node.lineno >= first_line:
                        sites.append((node.lineno, node.col_offset, kind, node, text))
    sites.sort(key=lambda s: (s[0], s[1]))
    # A nested function is walked as its own function too: keep each (node, text) once.
    done: set[tuple[int, str]] = set()
    for _, _, kind, node, text in sites:
        if (id(node), text) not in done:
            done.add((id(node), text))
            yield kind, node, text


def _docstring(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = func.body[0]
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def _statement_sites(stmt: ast.stmt) -> Iterator[tuple[str, ast.AST, str]]:
    if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Pass):
        yield "statement", stmt, "pass"
    returns_none = isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Constant) and stmt.value.value is None
    if isinstance(stmt, ast.Return) and stmt.value is not None and not returns_none:
        yield "return", stmt, "return None"
    if isinstance(stmt, ast.AugAssign):
        for op in _BINOP_SWAPS.get(type(stmt.op), ()):
            yield "arithmetic", stmt, ast.unparse(_with(stmt, op=op()))
    for node in _expressions(stmt):
        yield from _expression_sites(node)
    for child in _child_statements(stmt):
        yield from _statement_sites(child)


def _child_statements(stmt: ast.stmt) -> list[ast.stmt]:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return []  # walked as functions of their own
    children: list[ast.stmt] = []
    for name in ("body", "orelse", "finalbody"):
        children += getattr(stmt, name, [])
    for handler in getattr(stmt, "handlers", []):
        children += handler.body
    for case in getattr(stmt, "cases", []):
        children += case.body
    return children


def _expressions(stmt: ast.stmt) -> Iterator[ast.expr]:
    """The expressions a statement holds itself (not those of the statements nested in it), in a loaded
    context, outside annotations and f-strings."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return
    stack: list[ast.AST] = []
    for name, value in ast.iter_fields(stmt):
        if name in ("body", "orelse", "finalbody", "handlers", "cases", "annotation", "returns", "type_comment"):
            continue
        stack += value if isinstance(value, list) else [value]
    while stack:
        node = stack.pop()
        if not isinstance(node, ast.AST) or isinstance(node, ast.JoinedStr | ast.Lambda | ast.stmt):
            continue
        if isinstance(node, ast.expr):
            if getattr(node, "ctx", None) is not None and not isinstance(node.ctx, ast.Load):  # type: ignore[attr-defined]
                if isinstance(node, ast.Subscript):
                    stack.append(node.slice)  # a[i] = ...: the index is still read
                continue
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _expression_sites(node: ast.expr) -> Iterator[tuple[str, ast.AST, str]]:
    if isinstance(node, ast.BinOp):
        for op in _BINOP_SWAPS.get(type(node.op), ()):
            yield "arithmetic", node, _paren(_with(node, op=op()))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        yield ("boolean" if isinstance(node.op, ast.Not) else "arithmetic"), node, _paren(node.operand)
    elif isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield "boolean", node, _paren(_with(node, op=other))
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for swap in _COMPARE_SWAPS.get(type(op), ()):
                ops = [*node.ops[:i], swap(), *node.ops[i + 1 :]]
                yield "comparison", node, _paren(_with(node, ops=ops))
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            yield "constant", node, repr(not node.value)
        elif isinstance(node.value, int):
            for value in (node.value + 1, node.value - 1):
                yield "constant", node, _paren(ast.Constant(value))
    elif isinstance(node, ast.Slice):
        for name in ("lower", "upper"):
            bound = getattr(node, name)
            if bound is not None and not isinstance(bound, ast.Constant):  # constants: covered above
                for op in (ast.Add(), ast.Sub()):
                    yield "slice", bound, _paren(ast.BinOp(bound, op, ast.Constant(1)))


def _with(node: ast.AST, **fields: object) -> ast.AST:
    new = copy.copy(node)
    for name, value in fields.items():
        setattr(new, name, value)
    return new


def _paren(node: ast.AST) -> str:
    return f"({ast.unparse(node)})"
