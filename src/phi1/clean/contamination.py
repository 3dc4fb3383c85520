"""Does a training sample look like a benchmark problem? One answer for `phi1 clean`, `phi1 decontam` and
the report's similarity split: four detectors, each naming the problem it matched.

- `ngram`: a shared 13-gram (of words) with the problem's docstring or solution;
- `embedding`: cosine similarity of the sample to the problem (prompt + solution) at or above a threshold;
- `ast`: the AST match rate tau of one of the sample's functions to the problem's solution;
- `execution`: one of the sample's functions, renamed to the problem's entry point, passes its tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from phi1.clean.decontaminate import BenchmarkProblem, ast_matches, ngram_index, ngrams, sample_shapes
from phi1.clean.twins import Twin, candidates, entry_arity, find_twins, functions_of, sweep_twins
from phi1.sandbox import Sandbox

DETECTORS = ("ngram", "embedding", "ast", "execution")


@dataclass(frozen=True)
class Thresholds:
    ngram_n: int = 13
    embedding: float = 0.95
    ast: float = 0.9
    ast_min_nodes: int = 12
    execution_k: int = 3  # candidate functions (by name) run per benchmark problem, + 1 by embedding


@dataclass
class Match:
    sample: int
    problem: int
    detectors: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


def detect(
    texts: Sequence[str],
    kinds: Sequence[str],
    problems: Sequence[BenchmarkProblem],
    thresholds: Thresholds,
    sandbox: Sandbox | None,
    cosine: np.ndarray | None = None,
    workers: int | None = None,
    ast_floor: float | None = None,
) -> dict[tuple[int, int], Match]:
    """Every (sample, problem) pair that some detector fires on. `cosine` (samples x problems) enables the
    embedding detector and sharpens execution's candidates; without a sandbox, execution is skipped.
    AST scores down to `ast_floor` (default: the threshold) are kept, without firing the detector."""
    found: dict[tuple[int, int], Match] = {}

    def hit(i: int, j: int, detector: str, score: float, fires: bool = True) -> None:
        m = found.setdefault((i, j), Match(i, j))
        m.scores[detector] = max(score, m.scores.get(detector, 0.0))
        if fires and detector not in m.detectors:
            m.detectors.append(detector)

    for i, j, detector, score, fires in text_hits(texts, kinds, problems, thresholds, workers, ast_floor):
        hit(i, j, detector, score, fires)
    if cosine is not None and cosine.size:
        for i, j in zip(*np.nonzero(cosine >= thresholds.embedding), strict=True):
            hit(int(i), int(j), "embedding", round(float(cosine[i, j]), 4))

    if sandbox is not None:
        for twin in execution_twins(texts, kinds, problems, sandbox, cosine, thresholds.execution_k):
            hit(twin.sample, twin.problem, "execution", 1.0)
    return found


def text_hits(
    texts: Sequence[str],
    kinds: Sequence[str],
    problems: Sequence[BenchmarkProblem],
    thresholds: Thresholds,
    workers: int | None = None,
    ast_floor: float | None = None,
) -> list[tuple[int, int, str, float, bool]]:
    """(sample, problem, detector, score, fires) of the detectors that read text only: n-grams and AST.
    Samples are independent, so a shard of them can be matched anywhere."""
    out: list[tuple[int, int, str, float, bool]] = []
    index = _ngram_index(tuple(problems), thresholds.ngram_n)
    for i, text in enumerate(texts):
        counts: dict[int, int] = {}
        for gram in ngrams(text, thresholds.ngram_n):
            j = index.get(gram)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        out.extend((i, j, "ngram", float(n), True) for j, n in counts.items())

    owner, shapes = _shapes(texts, kinds, thresholds.ast_min_nodes)
    bench_owner, bench_shapes = _bench_shapes(tuple(problems), thresholds.ast_min_nodes)
    floor = min(thresholds.ast, ast_floor if ast_floor is not None else thresholds.ast)
    for f, b, tau in ast_matches(shapes, bench_shapes, floor, workers):
        out.append((owner[f], bench_owner[b], "ast", round(tau, 4), tau >= thresholds.ast))
    return out


@lru_cache(maxsize=4)
def _ngram_index(problems: tuple[BenchmarkProblem, ...], n: int) -> dict[tuple[str, ...], int]:
    return ngram_index(problems, n)


@lru_cache(maxsize=4)
def _bench_shapes(problems: tuple[BenchmarkProblem, ...], min_nodes: int) -> tuple[list[int], list[str]]:
    return _shapes([p.solution for p in problems], ["code"] * len(problems), min_nodes)


def _shapes(texts: Sequence[str], kinds: Sequence[str], min_nodes: int) -> tuple[list[int], list[str]]:
    """Every function shape of the texts, and the index of the text each came from."""
    owner, shapes = [], []
    for i, (text, kind) in enumerate(zip(texts, kinds, strict=True)):
        for shape in sample_shapes(text, kind, min_nodes):
            owner.append(i)
            shapes.append(shape)
    return owner, shapes


def execution_twins(
    texts: Sequence[str],
    kinds: Sequence[str],
    problems: Sequence[BenchmarkProblem],
    sandbox: Sandbox,
    cosine: np.ndarray | None = None,
    k: int = 4,
) -> list[Twin]:
    """Teacher-written samples (exercises, textbook code: a few functions each) are swept against every
    problem of each function's arity; corpus files (many functions) against a few candidates per problem."""
    functions = [f for i, (t, kind) in enumerate(zip(texts, kinds, strict=True)) for f in functions_of(t, kind, i)]
    swept = [f for f in functions if kinds[f.sample] in SWEPT_KINDS]
    others = [f for f in functions if kinds[f.sample] not in SWEPT_KINDS]
    runnable = [j for j, p in enumerate(problems) if p.entry_point and p.test]
    arities = [entry_arity(problems[j].solution, problems[j].entry_point) for j in runnable]
    tests = [(problems[j].entry_point, problems[j].test) for j in runnable]
    sub_cosine = cosine[:, runnable] if cosine is not None and cosine.size else None
    pairs = candidates(others, [(e, n) for (e, _), n in zip(tests, arities, strict=True)], sub_cosine, k_name=k)
    twins = sweep_twins(swept, tests, arities, sandbox) + find_twins(others, tests, pairs, sandbox)
    # Back from the runnable subset's numbering to the problems'.
    return [Twin(t.sample, runnable[t.problem], t.function) for t in twins]


SWEPT_KINDS = {"exercise", "textbook"}
