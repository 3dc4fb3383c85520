"""The per-shard steps of `phi1 clean`, for any executor (`phi1.executor`): each reads one input shard from
the run directory and returns small results (hashes, matches, candidates), never the shard's texts.

- `sign_shard`: exact digests and LSH band keys (the keys are saved beside the stage, for the bucket sort);
- the benchmark problems a run checks against, read once per worker (the detectors' own per-shard scan is
  `phi1.clean.driver.match_shard`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

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


def text_batches(path: str | Path, size: int = 512) -> Iterator[list[str]]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=size, columns=["text"]):
        yield batch.column(0).to_pylist()


@dataclass(frozen=True)
class SignJob:
    path: str
    keys_path: str
    sigs_path: str
    ngram: int
    bands: int
    rows: int


def sign_jobs(paths: Sequence[str | Path], work: Path, cfg: Any) -> list[SignJob]:
    """One job per input shard, its band keys and signatures written under `work` (a `clean` config)."""
    return [
        SignJob(str(p), str(work / f"bands-{k:05d}.npy"), str(work / f"sigs-{k:05d}.npy"), cfg.minhash_ngram,
                cfg.minhash_bands, cfg.minhash_rows)
        for k, p in enumerate(paths)
    ]  # fmt: skip


def sign_shard(job: SignJob) -> np.ndarray:
    """The shard's exact digests; its band keys go to `job.keys_path`, its signatures to `job.sigs_path`.
    The texts are read a batch at a time: a worker holds the hashes of the shard, not its text."""
    hashes = [doc_hashes(texts, job.ngram, job.bands, job.rows) for texts in text_batches(job.path)]
    parts = hashes or [doc_hashes([], job.ngram, job.bands, job.rows)]
    digests, keys, sigs = (np.concatenate(column) for column in zip(*parts, strict=True))
    for array, path in ((keys, job.keys_path), (sigs, job.sigs_path)):
        tmp = Path(path).with_suffix(".tmp.npy")
        np.save(tmp, array, allow_pickle=False)
        tmp.replace(path)
    return digests
