"""Decontamination against the benchmarks (the paper's section 5), three ways:

1. n-grams: a training sample sharing any 13-gram (of words) with a benchmark problem's docstring or
   solution;
2. embeddings: cosine similarity to a benchmark problem (prompt + solution) with the curation encoder;
3. AST: the normalised match rate tau between the AST of a training function and a benchmark solution:
   identifiers and literals are abstracted away, each tree becomes its sequence of node types, and tau is
   difflib's ratio of the two sequences. Cheap upper bounds (length and node-type counts, vectorised)
   rule out almost every pair before the exact ratio is computed.

Every benchmark problem also gets its nearest training sample and scores, for the evaluation to split
pass@1 into problems similar and not similar to the training data (the paper's Table 3).
"""

from __future__ import annotations

import ast
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path

import numpy as np

from phi1.data import benchmark_file, mbpp_entry_point
from phi1.errors import Phi1Error
from phi1.markdown import code_blocks
from phi1.records import read_jsonl

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class BenchmarkProblem:
    benchmark: str
    task_id: str
    prompt: str  # the natural-language part (docstring / problem text)
    solution: str  # the reference code
    entry_point: str = ""  # for execution matching: the function the tests call ...
    test: str = ""  # ... and the tests, a program run after it


def load_benchmark_problems(
    humaneval: bool = True, mbpp: bool = True, mbpp_path: str | None = None, extra: Sequence[str] = ()
) -> list[BenchmarkProblem]:
    """HumanEval and MBPP (all 974 problems: any may leak) from phi1's shipped copies or `mbpp_path`, and
    any `extra` JSONL files."""
    problems: list[BenchmarkProblem] = []
    if humaneval:
        for _, row in read_jsonl(benchmark_file("humaneval")):
            entry = row["entry_point"]
            solution = row["prompt"] + row["canonical_solution"]
            test = f"{row['test']}\ncheck({entry})\n"
            problems.append(BenchmarkProblem("humaneval", row["task_id"], row["prompt"], solution, entry, test))
    if mbpp:
        mbpp_path = mbpp_path or str(benchmark_file("mbpp"))
        if not Path(mbpp_path).exists():
            raise Phi1Error(f"clean.mbpp_path: {mbpp_path}: no such file")
        for lineno, row in read_jsonl(mbpp_path):
            if "text" not in row or "code" not in row:
                raise Phi1Error(f"{mbpp_path}:{lineno}: an MBPP row needs 'text' and 'code'")
            tests = list(row.get("test_list") or [])
            entry = mbpp_entry_point(tests[0]) if tests else ""
            test = "\n".join([row.get("test_setup_code") or "", *tests]) + "\n"
            tid = f"MBPP/{row.get('task_id', lineno)}"
            problems.append(BenchmarkProblem("mbpp", tid, row["text"], row["code"], entry, test))
    for path in extra:
        name = Path(path).name.split(".")[0]
        for lineno, row in read_jsonl(path):
            prompt = row.get("prompt", row.get("text"))
            code = row.get("canonical_solution", row.get("code"))
            if prompt is None or code is None:
                raise Phi1Error(f"{path}:{lineno}: needs prompt (or text) and canonical_solution (or code)")
            if "canonical_solution" in row and "prompt" in row:
                code = row["prompt"] + row["canonical_solution"]
            problems.append(BenchmarkProblem(name, str(row.get("task_id", f"{name}/{lineno}")), prompt, code))
    return problems


# -- n-grams ------------------------------------------------------------------------------------------


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ngram_index(problems: Sequence[BenchmarkProblem], n: int) -> dict[tuple[str, ...], int]:
    """Every n-gram of every problem's docstring and solution -> the problem it belongs to."""
    index: dict[tuple[str, ...], int] = {}
    for i, p in enumerate(problems):
        for gram in ngrams(p.prompt, n) | ngrams(p.solution, n):
            index.setdefault(gram, i)
    return index


# -- AST ----------------------------------------------------------------------------------------------

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old code are not our concern here
            return ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def function_shapes(source: str, min_nodes: int) -> list[str]:
    """The normalised node-type strings of every function in the source (unparseable source: none)."""
    tree = parse_quiet(source)
    if tree is None:
        return []
    shapes = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            shape = "".join(_code(name) for name in _preorder(node))
            if len(shape) >= min_nodes:
                shapes.append(shape)
    return shapes


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
