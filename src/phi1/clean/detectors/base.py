"""The interface every contamination detector implements, and what the driver hands it.

A detector works in up to three places: `scan` runs in a worker on one shard's texts (cheap candidate
search that needs only the text: n-grams, AST shapes, candidate functions); `fold` runs in the driver on
each shard's scan, in shard order (what needs the driver's state: embeddings, the sandbox); `finish` runs in
the driver once every shard is folded (confirmation across shards: the execution of each problem's best
candidates). What a detector finds goes into `Found` with `found.add(doc, problem, detector, score, fires)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from phi1.clean.driver import Found, Run

# (row in the shard, problem, detector, score, fires): a score below its threshold is kept for the report's
# similarity table without removing anything.
Hit = tuple[int, int, str, float, bool]


@dataclass(frozen=True)
class Thresholds:
    ngram_n: int = 13
    embedding: float = 0.95
    ast: float = 0.9
    ast_min_nodes: int = 12
    execution_k: int = 3  # candidate functions (by name) run per benchmark problem, + 1 by embedding
    # corpus code: each function's nearest problems by its own embedding, run (and judged) as candidates
    function_k: int = 3


@dataclass(frozen=True)
class ShardText:
    """What `scan` sees of one shard: the texts of the rows to check, their kind, and the settings."""

    rows: np.ndarray
    texts: list[str]
    kind: str
    thresholds: Thresholds
    ast_floor: float
    execution: bool
    embedding: bool = False  # the driver embeds (an encoder is set)
    source: Any = field(repr=False, default=None)  # where the problems come from (`shards.problems_of`)
    problems: tuple = field(repr=False, default=())  # the benchmark problems, in the driver's order


class Detector:
    """One detector; the driver makes a fresh one per run, so state between `fold` calls is its own."""

    name = "detector"

    @classmethod
    def make(cls, vectors: Any = None, judge: Any = None) -> Detector | None:
        """This run's detector (None: it cannot run here, e.g. embedding without an encoder, the LLM judge
        without an LLM teacher)."""
        return cls()

    @classmethod
    def scanner(cls) -> Detector | None:
        """The detector a worker scans with (it holds no driver state)."""
        return cls.make()

    def scan(self, shard: ShardText) -> Any:
        """Worker side: a picklable result for this shard (None: nothing to do in workers)."""
        return None

    def fold(self, run: Run, k: int, rows: np.ndarray, scanned: Any, found: Found) -> None:
        """Driver side, shard `k` of `run.shards` (its checked `rows`), in shard order."""

    def finish(self, run: Run, found: Found) -> None:
        """Driver side, once, after the last shard."""
