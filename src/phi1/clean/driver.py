"""The one decontamination driver: does a training sample look like a benchmark problem?

`detect_shards` runs every detector (`phi1.clean.detectors`) over Parquet shards: the workers scan each
shard's texts (n-grams, AST shapes, candidate functions), the driver folds each shard's scan in order
(embeddings, the sandbox sweep) and then confirms across shards (candidates run against the problems'
tests). `phi1 clean` calls it on the deduplicated training data, `phi1 decontam` (through `detect_texts`)
on any dataset: the same samples get the same (sample, problem, detector) flags from both.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phi1.clean.detectors import Detector, ShardText, Thresholds, detector_type, names
from phi1.clean.detectors.embedding import Vectors
from phi1.clean.detectors.llm_judge import Judge, off_reason
from phi1.clean.shards import ProblemSource, problems_of, read_texts, runnable
from phi1.executor import map_shards


@dataclass
class Shard:
    path: Path
    folder: str
    kind: str
    offset: int = 0  # index of its first document among all shards' documents
    size: int = 0


@dataclass
class Match:
    sample: int
    problem: int
    detectors: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Found:
    """What the detectors found, folded shard by shard: per document the first detector that fired (and the
    problem), per problem what the similarity table needs, and every (document, problem) pair with a hit."""

    n_problems: int
    cause: dict[int, tuple[int, int]] = field(default_factory=dict)  # doc -> (detector index, problem)
    best_ast: dict[int, tuple[float, int]] = field(default_factory=dict)  # problem -> (tau, doc)
    ngram: dict[int, int] = field(default_factory=dict)
    twins: dict[int, int] = field(default_factory=dict)
    max_cos: np.ndarray | None = None
    max_cos_doc: np.ndarray | None = None
    pairs: dict[tuple[int, int], Match] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # what a detector reports of its run (the judge's counts)

    def add(self, doc: int, problem: int, detector: str, score: float, fires: bool) -> None:
        if detector == "ast" and score > self.best_ast.get(problem, (0.0, -1))[0]:
            self.best_ast[problem] = (score, doc)
        m = self.pairs.setdefault((doc, problem), Match(doc, problem))
        first = detector not in m.scores  # a pair two candidate paths found (execution) counts once
        if detector == "ngram":
            self.ngram[problem] = self.ngram.get(problem, 0) + 1
        if detector == "execution" and first:
            self.twins[problem] = self.twins.get(problem, 0) + 1
        m.scores[detector] = max(score, m.scores.get(detector, 0.0))
        if fires:
            order = names()
            if detector not in m.detectors:
                m.detectors = sorted({*m.detectors, detector}, key=order.index)
            d = order.index(detector)
            if d < self.cause.get(doc, (len(order), 0))[0]:
                self.cause[doc] = (d, problem)

    def add_cosine(self, docs: np.ndarray, cos: np.ndarray) -> None:
        if self.max_cos is None:
            self.max_cos = np.full(self.n_problems, -np.inf)
            self.max_cos_doc = np.full(self.n_problems, -1, dtype=np.int64)
        if not len(docs):
            return
        best = cos.argmax(axis=0)
        value = cos[best, np.arange(cos.shape[1])]
        better = value > self.max_cos
        self.max_cos[better] = value[better]
        self.max_cos_doc[better] = docs[best[better]]  # type: ignore[index]

    def flagged(self) -> list[Match]:
        """The pairs some detector fired on, by (sample, problem)."""
        return [m for _, m in sorted(self.pairs.items()) if m.detectors]


@dataclass
class Run:
    """What the detectors share in the driver."""

    shards: list[Shard]
    thresholds: Thresholds
    tests: list[tuple[str, str]]  # per problem: (entry point, test program)
    arities: list[int | None]
    sandbox: Any
    cosine: np.ndarray | None = None  # the shard being folded: its samples x problems (embedding)
    problems: tuple = ()  # the benchmark problems (the judge shows them)
    # the shard being folded, corpus code: its functions (sample = document) and their cosines to the problems
    # seen two ways (embedding): [views (the source; the docstring alone, -1 without one), functions, problems]
    functions: list = field(default_factory=list)
    function_cosine: np.ndarray | None = None


@dataclass(frozen=True)
class MatchJob:
    path: str
    kind: str
    rows: tuple[int, ...]  # the shard's rows to check (clean: those left after deduplication)
    source: ProblemSource
    thresholds: Thresholds
    ast_floor: float
    execution: bool
    embedding: bool = False


def match_shard(job: MatchJob) -> dict[str, Any]:
    """A worker's part: every scanning detector over one shard's texts."""
    rows = np.asarray(job.rows, dtype=np.int64)
    shard = ShardText(rows, read_texts(job.path, rows), job.kind, job.thresholds, job.ast_floor, job.execution,
                      job.embedding, job.source, problems_of(job.source))  # fmt: skip
    scanners = (detector_type(name).scanner() for name in names())
    return {d.name: d.scan(shard) for d in scanners if d is not None}


def make_detectors(vectors: Vectors | None, judge: Judge | None = None) -> list[Detector]:
    """A fresh detector of each registered kind, in order of precedence; those that can run here."""
    made = (detector_type(name).make(vectors, judge=judge) for name in names())
    return [d for d in made if d is not None]


def detect_shards(
    shards: list[Shard],
    rows: list[np.ndarray],
    source: ProblemSource,
    thresholds: Thresholds,
    vectors: Vectors | None,
    sandbox: Any,
    executor: Any = None,
    ast_floor: float | None = None,
    judge: Judge | None = None,
) -> Found:
    """Every detector over `rows` of each shard (documents numbered from each shard's offset). Without a
    sandbox, execution is skipped; without vectors, embedding; without an LLM `judge`, llm. AST scores down
    to `ast_floor` are kept."""
    problems = problems_of(source)
    run = Run(shards, thresholds, [(p.entry_point, p.test) for p in problems], runnable(source)[1], sandbox,
              problems=problems)  # fmt: skip
    detectors = make_detectors(vectors, judge)
    floor = thresholds.ast if ast_floor is None else ast_floor
    jobs = [
        MatchJob(
            str(s.path), s.kind, tuple(r.tolist()), source, thresholds, floor, sandbox is not None, vectors is not None
        )
        for s, r in zip(shards, rows, strict=True)
    ]
    found = Found(len(problems))
    if off_reason(judge) is not None:
        found.notes["llm"] = {"status": off_reason(judge)}
    for k, scanned in enumerate(map_shards(match_shard, jobs, executor, "decontaminating")):
        run.cosine, run.functions, run.function_cosine = None, [], None
        for detector in detectors:
            detector.fold(run, k, rows[k], scanned.get(detector.name), found)
    for detector in detectors:
        detector.finish(run, found)
    return found


def detect_texts(
    texts: list[str],
    kinds: list[str],
    source: ProblemSource,
    thresholds: Thresholds,
    sandbox: Any,
    encoder: str | None = None,
    judge: Judge | None = None,
) -> tuple[dict[tuple[int, int], Match], dict[str, Any]]:
    """The driver over texts in memory (`phi1 decontam`, tests): one shard per kind; every (text, problem)
    pair with a hit, texts numbered as given, and the detectors' notes."""
    with tempfile.TemporaryDirectory(prefix="phi1-decontam-") as tmp:
        shards, rows, order = [], [], []
        for kind in dict.fromkeys(kinds):
            members = [i for i, k in enumerate(kinds) if k == kind]
            path = Path(tmp) / f"data-{len(shards):05d}.parquet"
            pq.write_table(pa.table({"id": [str(i) for i in members], "text": [texts[i] for i in members]}), path)
            shards.append(Shard(path, "data", kind, len(order), len(members)))
            rows.append(np.arange(len(members), dtype=np.int64))
            order += members
        vectors = Vectors(encoder, list(problems_of(source))) if encoder else None
        found = detect_shards(shards, rows, source, thresholds, vectors, sandbox, judge=judge)
    matches = {(order[d], j): Match(order[d], j, m.detectors, m.scores) for (d, j), m in found.pairs.items()}
    return matches, found.notes
