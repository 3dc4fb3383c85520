"""The per-shard steps of `phi1 clean`, for any executor (`phi1.executor`): each reads one input shard from
the run directory and returns small results (hashes, matches, candidates), never the shard's texts.

- `sign_shard`: exact digests and LSH band keys (the keys are saved beside the stage, for the bucket sort);
- `match_shard`: the text detectors (n-grams, AST), the teacher-written functions to sweep, and each problem's
  best candidates by name among the shard's corpus functions (to run against the problem's tests later).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from phi1.clean.contamination import SWEPT_KINDS, Thresholds, text_hits
from phi1.clean.decontaminate import BenchmarkProblem, load_benchmark_problems
from phi1.clean.dedup import doc_hashes
from phi1.clean.twins import Function, NameIndex, entry_arity, functions_of


@dataclass(frozen=True)
class Benchmarks:
    humaneval: bool = True
    mbpp: bool = True
    mbpp_path: str | None = None
    extra: tuple[str, ...] = ()


@lru_cache(maxsize=2)
def problems_of(spec: Benchmarks) -> tuple[BenchmarkProblem, ...]:
    return tuple(load_benchmark_problems(spec.humaneval, spec.mbpp, spec.mbpp_path, spec.extra))


@lru_cache(maxsize=2)
def runnable(spec: Benchmarks) -> tuple[NameIndex, list[int | None]]:
    """The entry points' name index, and each problem's arity (None: it cannot be run)."""
    problems = problems_of(spec)
    arities = [entry_arity(p.solution, p.entry_point) if p.entry_point and p.test else None for p in problems]
    return NameIndex([p.entry_point for p in problems]), arities


def read_texts(path: str | Path, rows: np.ndarray | None = None) -> list[str]:
    column = pq.read_table(path, columns=["text"]).column("text")
    if rows is not None:
        column = column.take(rows)
    return column.to_pylist()


@dataclass(frozen=True)
class SignJob:
    path: str
    keys_path: str
    ngram: int
    bands: int
    rows: int


def sign_shard(job: SignJob) -> np.ndarray:
    """The shard's exact digests; its band keys go to `job.keys_path`."""
    digests, keys = doc_hashes(read_texts(job.path), job.ngram, job.bands, job.rows)
    tmp = Path(job.keys_path).with_suffix(".tmp.npy")
    np.save(tmp, keys, allow_pickle=False)
    tmp.replace(job.keys_path)
    return digests


@dataclass(frozen=True)
class MatchJob:
    path: str
    kind: str
    rows: tuple[int, ...]  # the shard's rows still in after deduplication
    benchmarks: Benchmarks
    thresholds: Thresholds
    ast_floor: float
    execution: bool
    k_name: int = 3
    min_name: float = 0.5


@dataclass
class ShardMatches:
    hits: list[tuple[int, int, str, float, bool]]  # (row, problem, detector, score, fires)
    swept: list[Function] = field(default_factory=list)  # teacher-written functions (sample = row)
    by_name: dict[int, list[tuple[float, int, Function]]] = field(default_factory=dict)  # problem -> top k
    last_of_arity: list[tuple[int, int, int]] = field(default_factory=list)  # (row, arity, function order)


def match_shard(job: MatchJob) -> ShardMatches:
    rows = np.asarray(job.rows, dtype=np.int64)
    texts = read_texts(job.path, rows)
    problems = problems_of(job.benchmarks)
    found = text_hits(texts, [job.kind] * len(texts), problems, job.thresholds, workers=1, ast_floor=job.ast_floor)
    out = ShardMatches([(int(rows[i]), j, d, s, f) for i, j, d, s, f in found])
    if not job.execution:
        return out
    index, arities = runnable(job.benchmarks)
    order = 0
    for row, text in zip(rows.tolist(), texts, strict=True):
        functions = functions_of(text, job.kind, row)
        if job.kind in SWEPT_KINDS:
            out.swept += functions
            continue
        last: dict[int, int] = {}
        for f in functions:
            for j, score in index.scores(f.name, job.min_name).items():
                if arities[j] == f.arity:
                    _keep_top(out.by_name.setdefault(j, []), (score, order, f), job.k_name)
            last[f.arity] = order
            order += 1
        out.last_of_arity += [(row, a, o) for a, o in sorted(last.items())]
    for j in out.by_name:
        out.by_name[j].sort(key=lambda t: (t[0], t[1]), reverse=True)
    return out


def _keep_top(heap: list[tuple[float, int, Function]], item: tuple[float, int, Function], k: int) -> None:
    """A min-heap of the k largest (score, order); Function never takes part in the comparison."""
    if len(heap) < k:
        heapq.heappush(heap, item)  # type: ignore[misc]
    elif (item[0], item[1]) > (heap[0][0], heap[0][1]):
        heapq.heapreplace(heap, item)  # type: ignore[misc]
