"""`ast`: the normalised AST match rate tau of one of the sample's functions to what a problem asks for (its
entry point and the functions that calls: `solution_shapes`), names and constants abstracted away: each tree
becomes its sequence of node types, and tau is difflib's ratio of the two sequences; cheap vectorised upper
bounds, on length and node-type counts, rule out almost every pair before the exact ratio is computed. It fires
at or above `clean.ast_threshold`. Scores down to the driver's `ast_floor` are kept without firing, for the
report's table of taus (the paper's Table 3)."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

import numpy as np

from phi1 import pysource
from phi1.clean.detectors.base import Detector, Hit, ShardText
from phi1.clean.problems import BenchmarkProblem
from phi1.markdown import code_blocks

_NODE_CODES: dict[str, str] = {}


def _code(name: str) -> str:
    if name not in _NODE_CODES:
        _NODE_CODES[name] = chr(0x100 + len(_NODE_CODES))
    return _NODE_CODES[name]


def _preorder(node: ast.AST) -> Iterable[str]:
    """Node types in preorder, identifiers and literal values abstracted (they are not nodes here)."""
    body = getattr(node, "body", None)
    skip_doc = (
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and body
        and isinstance(body[0], ast.Expr)
        and isinstance(getattr(body[0], "value", None), ast.Constant)
        and isinstance(body[0].value.value, str)
    )
    yield type(node).__name__
    for field, value in ast.iter_fields(node):
        if field in ("ctx", "type_comment", "decorator_list", "returns", "annotation"):
            continue
        children = value if isinstance(value, list) else [value]
        for j, child in enumerate(children):
            if skip_doc and field == "body" and j == 0:
                continue
            if isinstance(child, ast.AST):
                yield from _preorder(child)


@lru_cache(maxsize=16)
def parse_quiet(source: str) -> ast.Module | None:
    """The source's AST, or None when it does not parse. Cached: the AST detector and the execution detector
    read the same file one after the other, and parsing is most of what they cost."""
    try:
        return pysource.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def function_nodes(source: str, min_nodes: int) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    """Every function in the source (methods and nested ones too) with its normalised node-type string, those of
    at least `min_nodes` nodes (unparseable source: none)."""
    tree = parse_quiet(source)
    return [] if tree is None else _shaped(ast.walk(tree), min_nodes)


def _shaped(nodes: Iterable[ast.AST], min_nodes: int) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    out = []
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            shape = "".join(_code(name) for name in _preorder(node))
            if len(shape) >= min_nodes:
                out.append((node, shape))
    return out


def function_shapes(source: str, min_nodes: int) -> list[str]:
    """The normalised node-type strings of every function in the source (unparseable source: none)."""
    return [shape for _, shape in function_nodes(source, min_nodes)]


def solution_shapes(solution: str, entry_point: str, min_nodes: int) -> list[str]:
    """The shapes of what a benchmark problem asks for: its entry point and the module-level functions it calls,
    directly or through each other (with the functions nested in them). A helper class's methods
    (MBPP/601's `Pair.__init__`: `self.a = a; self.b = b`) and functions the prompt gives but the answer does not
    call (HumanEval/50's `encode_shift`) are not the answer: their shapes are everywhere (38 of the 87 standard
    library files `make run`'s demo removed as AST look-alikes matched only such methods). Without an entry point
    defined at module level (a user's problem file), every function counts."""
    tree = parse_quiet(solution)
    top = {n.name: n for n in (tree.body if tree else []) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if entry_point not in top:
        return function_shapes(solution, min_nodes)
    chosen, todo = set(), [entry_point]
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        chosen.add(name)
        todo += [c.func.id for c in ast.walk(top[name])
                 if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in top]  # fmt: skip
    nodes = [node for name in top if name in chosen for node in ast.walk(top[name])]  # in source order
    return [shape for _, shape in _shaped(nodes, min_nodes)]


def sample_shapes(text: str, kind: str, min_nodes: int) -> list[str]:
    """Functions of a training sample: a code file or exercise as a whole, a textbook's code blocks."""
    if kind == "textbook":
        return [s for block in code_blocks(text) for s in function_shapes(block, min_nodes)]
    return function_shapes(text, min_nodes)


def _counts(shapes: Sequence[str], alphabet: dict[str, int]) -> np.ndarray:
    out = np.zeros((len(shapes), len(alphabet)), dtype=np.float32)
    for i, s in enumerate(shapes):
        for ch in s:
            out[i, alphabet[ch]] += 1
    return out


def _exact_block(args: tuple[list[tuple[int, int]], list[str], list[str]]) -> list[float]:
    pairs, train, bench = args
    return [SequenceMatcher(None, train[i], bench[j], autojunk=False).ratio() for i, j in pairs]


def ast_matches(
    train: Sequence[str], bench: Sequence[str], floor: float, workers: int | None = None
) -> list[tuple[int, int, float]]:
    """Every (training function, benchmark function, tau) with tau >= floor."""
    train, bench = list(train), list(bench)
    if not train or not bench:
        return []
    alphabet = {ch: k for k, ch in enumerate(sorted(set("".join(train)) | set("".join(bench))))}
    cb = _counts(bench, alphabet)
    lb = cb.sum(1)
    candidates: list[tuple[int, int]] = []
    step = max(1, 4_000_000 // max(1, len(bench) * len(alphabet)))
    for start in range(0, len(train), step):
        ct = _counts(train[start : start + step], alphabet)
        lt = ct.sum(1)
        total = lt[:, None] + lb[None, :]
        # tau = 2*M/T is at most 2*min(len)/T and at most 2*sum(min(counts))/T: both are upper bounds.
        rows, cols = np.nonzero(2 * np.minimum(lt[:, None], lb[None, :]) >= floor * total)
        if rows.size:
            overlap = np.minimum(ct[rows], cb[cols]).sum(1)
            keep = 2 * overlap >= floor * total[rows, cols]
            candidates.extend(zip((rows[keep] + start).tolist(), cols[keep].tolist(), strict=True))
    if not candidates:
        return []
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(candidates) > 2000:
        size = (len(candidates) + workers * 8 - 1) // (workers * 8)
        blocks = [candidates[i : i + size] for i in range(0, len(candidates), size)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            ratios = [r for block in pool.map(_exact_block, [(b, train, bench) for b in blocks]) for r in block]
    else:
        ratios = _exact_block((candidates, train, bench))
    return [(i, j, tau) for (i, j), tau in zip(candidates, ratios, strict=True) if tau >= floor]


def _owned(per_item: Iterable[list[str]]) -> tuple[list[int], list[str]]:
    """Every shape of the items in one list, and the index of the item each came from."""
    pairs = [(i, shape) for i, shapes in enumerate(per_item) for shape in shapes]
    return [i for i, _ in pairs], [shape for _, shape in pairs]


def shapes_of(texts: Sequence[str], kinds: Sequence[str], min_nodes: int) -> tuple[list[int], list[str]]:
    """Every function shape of the texts, and the index of the text each came from."""
    return _owned(sample_shapes(text, kind, min_nodes) for text, kind in zip(texts, kinds, strict=True))


@lru_cache(maxsize=4)
def _bench_shapes(problems: tuple[BenchmarkProblem, ...], min_nodes: int) -> tuple[list[int], list[str]]:
    return _owned(solution_shapes(p.solution, p.entry_point, min_nodes) for p in problems)


class AstDetector(Detector):
    name = "ast"

    def scan(self, shard: ShardText) -> list[Hit]:
        th = shard.thresholds
        owner, shapes = shapes_of(shard.texts, [shard.kind] * len(shard.texts), th.ast_min_nodes)
        bench_owner, bench_shapes = _bench_shapes(tuple(shard.problems), th.ast_min_nodes)
        rows = shard.rows.tolist()
        floor = min(th.ast, shard.ast_floor)
        return [(rows[owner[f]], bench_owner[b], self.name, round(tau, 4), tau >= th.ast)
                for f, b, tau in ast_matches(shapes, bench_shapes, floor, 1)]  # fmt: skip

    def fold(self, run: Any, k: int, rows: np.ndarray, scanned: list[Hit], found: Any) -> None:
        offset = run.shards[k].offset
        for row, j, detector, score, fires in scanned:
            found.add(offset + row, j, detector, score, fires)
