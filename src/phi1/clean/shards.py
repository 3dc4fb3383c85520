"""The per-shard steps of `phi1 clean`, for any executor (`phi1.executor`): each reads one input shard from
the run directory and returns small results (hashes, matches, candidates), never the shard's texts.

- `sign_shard`: exact digests and LSH band keys (the keys are saved beside the stage, for the bucket sort);
- the benchmark problems a run checks against, read once per worker (the detectors' own per-shard scan is
  `phi1.clean.driver.match_shard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from phi1.clean.dedup import doc_hashes
from phi1.clean.problems import BenchmarkProblem, load_benchmark_problems
from phi1.clean.twins import NameIndex, entry_arity


@dataclass(frozen=True)
class Benchmarks:
    humaneval: bool = True
    mbpp: bool = True
    mbpp_path: str | None = None
    extra: tuple[str, ...] = ()


# Where a run's benchmark problems come from: the files a spec names (read once per worker), or the problems
# themselves (`phi1.clean.driver.detect_texts`, for problems given in memory).
ProblemSource = Benchmarks | tuple[BenchmarkProblem, ...]


@lru_cache(maxsize=2)
def problems_of(spec: ProblemSource) -> tuple[BenchmarkProblem, ...]:
    if isinstance(spec, tuple):
        return spec
    return tuple(load_benchmark_problems(spec.humaneval, spec.mbpp, spec.mbpp_path, spec.extra))


@lru_cache(maxsize=2)
def runnable(spec: ProblemSource) -> tuple[NameIndex, list[int | None]]:
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
