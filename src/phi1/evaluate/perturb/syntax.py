"""`syntax`: ReCode's natgen family, on its partial-code setting: the prompt is followed by the first half of
the canonical solution's top-level statements (`partial`), and the transformations change that code:
local variables renamed (in the rest of the solution too, so it still fits), dead code inserted, `for` <->
`while`, and the operands of a comparison swapped with the mirrored operator. The model completes the rest.

Left out from ReCode: VarRenamerCB (its names come from CodeBERT; here they come from a fixed list).
"""

from __future__ import annotations

import ast
import random
import tokenize
from collections.abc import Callable
from dataclasses import dataclass

from phi1.evaluate.perturb.case import (
    Case,
    Transform,
    edit_positions,
    entry_function,
    fresh_name,
    indent_of,
    names_in,
    parse,
    split_lines,
    tokens,
)

_NAMES = ("value", "item", "temp", "acc", "current", "res", "var", "element", "entry", "tmp_val")
_MIRROR = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: ">", ast.LtE: ">=", ast.Gt: "<", ast.GtE: "<="}
_SIMPLE = (ast.Name, ast.Constant, ast.Attribute, ast.Subscript, ast.UnaryOp)


def partial(case: Case) -> Case | None:
    """The nominal partial-code problem: the prompt extended by the first half (at least one) of the entry
    function's top-level statements after it, the completion the rest. None: fewer than two statements."""
    full = case.prompt + case.reference
    tree = parse(full)
    fn = entry_function(tree, case.entry) if tree is not None else None
    if fn is None or not case.prompt.endswith("\n"):
        return None
    n = len(split_lines(case.prompt))
    body = [s for s in fn.body if s.lineno > n]
    if len(body) < 2:
        return None
    split = body[len(body) // 2 - 1].end_lineno or 0
    lines = split_lines(full)
    if split < n or split >= len(lines):
        return None
    return case.with_(prompt="".join(lines[:split]), reference="".join(lines[split:]))


def _region(case: Case) -> tuple[str, ast.Module, ast.FunctionDef, int, int] | None:
    """(full code, its tree, the entry function, first and last line of the code the prompt shows)."""
    full = case.prompt + case.reference
    tree = parse(full)
    fn = entry_function(tree, case.entry) if tree is not None else None
    if tree is None or fn is None:
        return None
    shown = len(split_lines(case.prompt))
    first = fn.body[1].lineno if _has_docstring(fn) and len(fn.body) > 1 else fn.body[0].lineno
    return full, tree, fn, first, shown


def _has_docstring(fn: ast.FunctionDef) -> bool:
    first = fn.body[0]
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def _split(case: Case, full: str) -> Case:
    """The changed full code cut where the prompt ended, moved by the lines the change added (every change
    is in the code the prompt shows)."""
    lines = split_lines(full)
    n = len(split_lines(case.prompt)) + len(lines) - len(split_lines(case.prompt + case.reference))
    return case.with_(prompt="".join(lines[:n]), reference="".join(lines[n:]))


def _statements(fn: ast.FunctionDef, first: int, last: int) -> list[ast.stmt]:
    return [s for s in ast.walk(fn) if isinstance(s, ast.stmt) and s is not fn and first <= s.lineno and
            (s.end_lineno or s.lineno) <= last]  # fmt: skip


def _starts_line(full: str, node: ast.stmt) -> bool:
    line = split_lines(full)[node.lineno - 1]
    return line.encode()[: node.col_offset].strip() == b""


def var_rename(case: Case, rng: random.Random) -> Case | None:
    """A local variable the partial code assigns, renamed through the whole function."""
    region = _region(case)
    if region is None:
        return None
    full, _, fn, first, last = region
    params = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
    scoped = {n for s in ast.walk(fn) if isinstance(s, (ast.Global, ast.Nonlocal)) for n in s.names}
    assigned = sorted({n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and
                       first <= n.lineno <= last} - params - scoped - {case.entry})  # fmt: skip
    fn_toks = [t for t in tokens(full) if fn.lineno <= t.start[0] <= (fn.end_lineno or fn.lineno)]
    usable = []
    for old in assigned:
        uses = sum(1 for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id == old)
        if uses == sum(1 for t in fn_toks if t.type == tokenize.NAME and t.string == old):
            usable.append(old)  # every token of the name is that variable (no attribute, keyword or param)
    if not usable:
        return None
    old = rng.choice(usable)
    taken = names_in(full, *case.tests)
    choices = [n for n in _NAMES if fresh_name(n, taken)] or [
        f"{old}_{k}" for k in range(2, 9) if fresh_name(f"{old}_{k}", taken)
    ]
    if not choices:
        return None
    new = rng.choice(choices)
    edits = [(t.start[0], t.start[1], t.end[1], new) for t in fn_toks if t.type == tokenize.NAME and t.string == old]
    return _split(case, edit_positions(full, edits))


def _unit(full: str, fn: ast.FunctionDef) -> str:
    lines = split_lines(full)
    inner, outer = indent_of(lines[fn.body[0].lineno - 1]), indent_of(lines[fn.lineno - 1])
    return inner[len(outer) :] or "    "


def dead_code(case: Case, rng: random.Random) -> Case | None:
    """A block that never runs (`if False:`, `while False:`, `for _i in range(0):`) holding a copy of a
    one-line statement of the function, before a statement of the partial code."""
    region = _region(case)
    if region is None:
        return None
    full, _, fn, first, last = region
    spots = [
        s for s in _statements(fn, first, last) if _starts_line(full, s) and not getattr(s, "decorator_list", None)
    ]
    if not spots:
        return None
    copies = [ast.get_source_segment(full, s) for s in _statements(fn, first, fn.end_lineno or first) if _copyable(s)]
    taken = names_in(full, *case.tests)
    loop = next(f"_i_{k}" for k in range(100) if fresh_name(f"_i_{k}", taken))
    head = rng.choice(["if False:", "while False:", f"for {loop} in range(0):"])
    spot = rng.choice(spots)
    lines = split_lines(full)
    ind = indent_of(lines[spot.lineno - 1])
    inner = rng.choice([c for c in copies if c] or ["pass"])
    lines.insert(spot.lineno - 1, f"{ind}{head}\n{ind}{_unit(full, fn)}{inner}\n")
    return _split(case, "".join(lines))


def _copyable(s: ast.stmt) -> bool:
    """A one-line statement that may sit in a block that never runs: no yield (that would make the
    function a generator), no await, no walrus."""
    if s.lineno != s.end_lineno or not isinstance(s, (ast.Assign, ast.AugAssign, ast.Expr, ast.Return)):
        return False
    return not any(isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await, ast.NamedExpr)) for n in ast.walk(s))


@dataclass(frozen=True)
class _Loop:
    """A chosen loop, its source, and what its replacement header needs."""

    node: ast.For | ast.While
    full: str
    name: str  # a fresh name for the rewrite's helper variable
    ind: str  # the loop statement's indentation
    body: str  # its body's (which need not be the loop's plus the function's unit)
    unit: str


def _rewrite_loop(
    case: Case, rng: random.Random, kind: type, head: str, prefix: str, header: Callable[[_Loop], str]
) -> Case | None:
    """Replace the header of one `kind` loop (no `else`, its body on later lines than `head`, the iter or
    test) of the partial code with `header(...)`, the body kept as it is."""
    region = _region(case)
    if region is None:
        return None
    full, _, fn, first, last = region
    loops = [s for s in _statements(fn, first, last) if isinstance(s, kind) and not s.orelse and
             _starts_line(full, s) and s.body[0].lineno > (getattr(s, head).end_lineno or s.lineno)]  # fmt: skip
    if not loops:
        return None
    node = rng.choice(loops)
    lines = split_lines(full)
    taken = names_in(full, *case.tests)
    name = next(f"{prefix}{k}" for k in range(100) if fresh_name(f"{prefix}{k}", taken))
    loop = _Loop(node, full, name, indent_of(lines[node.lineno - 1]), indent_of(lines[node.body[0].lineno - 1]),
                 _unit(full, fn))  # fmt: skip
    lines[node.lineno - 1 : getattr(node, head).end_lineno or node.lineno] = [header(loop)]
    return _split(case, "".join(lines))


def for_to_while(case: Case, rng: random.Random) -> Case | None:
    """`for x in xs:` -> `_it = iter(xs)` / `while True:` / `try: x = next(_it)` / `except StopIteration:
    break` (the body unchanged: `continue` and `break` mean what they meant). Not for loops with `else`."""

    def header(lp: _Loop) -> str:
        target = ast.get_source_segment(lp.full, lp.node.target)  # type: ignore[union-attr]
        source = ast.get_source_segment(lp.full, lp.node.iter)  # type: ignore[union-attr]
        # The try/except sits at the body's own depth, which need not be the loop's plus the function's unit.
        return (f"{lp.ind}{lp.name} = iter({source})\n{lp.ind}while True:\n{lp.body}try:\n"
                f"{lp.body}{lp.unit}{target} = next({lp.name})\n{lp.body}except StopIteration:\n"
                f"{lp.body}{lp.unit}break\n")  # fmt: skip

    return _rewrite_loop(case, rng, ast.For, "iter", "_iter_", header)


def while_to_for(case: Case, rng: random.Random) -> Case | None:
    """`while cond:` -> `for _ in iter(int, 1):` / `if not (cond): break` (an endless iterator: int() is 0)."""

    def header(lp: _Loop) -> str:
        cond = ast.get_source_segment(lp.full, lp.node.test)  # type: ignore[union-attr]
        return f"{lp.ind}for {lp.name} in iter(int, 1):\n{lp.body}if not ({cond}):\n{lp.body}{lp.unit}break\n"

    return _rewrite_loop(case, rng, ast.While, "test", "_loop_", header)


def _simple(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, ast.Attribute):
        return _simple(node.value)
    if isinstance(node, ast.Subscript):
        return _simple(node.value) and _simple(node.slice)
    return isinstance(node, _SIMPLE)


def _swappable(n: ast.Compare) -> bool:
    one_line = n.lineno == n.end_lineno
    return one_line and len(n.ops) == 1 and type(n.ops[0]) in _MIRROR and _simple(n.left) and _simple(n.comparators[0])


def operand_swap(case: Case, rng: random.Random) -> Case | None:
    """`a < b` -> `b > a` (`==`, `!=` kept), for one comparison of two plain operands on one line."""
    region = _region(case)
    if region is None:
        return None
    full, _, fn, first, last = region
    found = [n for n in ast.walk(fn) if isinstance(n, ast.Compare) and _swappable(n) and first <= n.lineno <= last]
    if not found:
        return None
    node = rng.choice(found)
    left, right = ast.get_source_segment(full, node.left), ast.get_source_segment(full, node.comparators[0])
    lines = split_lines(full)
    raw = lines[node.lineno - 1].encode()
    new = f"{right} {_MIRROR[type(node.ops[0])]} {left}".encode()
    lines[node.lineno - 1] = (raw[: node.col_offset] + new + raw[node.end_col_offset or 0 :]).decode()
    return _split(case, "".join(lines))


TRANSFORMS: dict[str, Transform] = {
    "var_rename": var_rename,
    "dead_code": dead_code,
    "for_to_while": for_to_while,
    "while_to_for": while_to_for,
    "operand_swap": operand_swap,
}
