"""`embedding`: cosine similarity of the sample to a benchmark problem (its prompt and solution) at or above
`clean.embed_threshold`. Folded in the driver, where the encoder lives; a run's curated corpus files reuse
the vectors curation already computed. Every problem's nearest sample is recorded for the report."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from phi1.clean.detectors.ast_match import parse_quiet
from phi1.clean.detectors.base import Detector, ShardText
from phi1.clean.shards import read_texts, runnable
from phi1.clean.twins import Function, functions_of
from phi1.precision import resolve
from phi1.user_cache import user_cache

SWEPT_KINDS = {"exercise", "textbook"}  # a sample is a few functions: the sample's own embedding serves
_VECTORS_FORMAT = 1  # of the cached problem vectors: bumped when what they hold changes


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Vectors:
    """Unit embedding vectors of a shard's documents and of the problems. The shards of `reuse_folder` take
    their vectors from `reuse` (curation's ids-*.npy / emb-*.npy, read forward: the curated files come in
    corpus order, as the embeddings were stored); every other text is encoded here."""

    def __init__(
        self,
        spec: str,
        problems: list,
        max_tokens: int = 256,
        device: str | None = None,
        bf16: str = "auto",
        reuse: list[Path] | None = None,
        reuse_folder: str | None = None,
    ) -> None:
        self.spec, self.max_tokens, self.device, self.bf16 = spec, max_tokens, device, bf16
        self.files, self.reuse_folder = list(reuse or []), reuse_folder
        self.next_file = 0
        self.known: dict[str, np.ndarray] = {}
        self.encoder: Any = None
        texts = [p.solution if p.prompt in p.solution else p.prompt + "\n" + p.solution for p in problems]
        self.bench = self._problem_vectors(texts) if problems else np.zeros((0, 1))

    def _problem_vectors(self, texts: list[str]) -> np.ndarray:
        """The problems' unit vectors, from phi1's user cache where the same encoder (its weights'
        fingerprint, token limit, device and dtype) encoded the same texts before: every clean and decontam
        run compares with the same benchmarks, ~30 s of MiniLM on a 2-core CPU each time."""
        from phi1.curate.embed import encoder_identity

        identity = encoder_identity(self.spec)
        if identity is None:
            return unit(self._encode(texts))
        precision = resolve(self.bf16, self.device)
        blob = json.dumps({"encoder": identity, "max_tokens": self.max_tokens, "format": _VECTORS_FORMAT,
                           "device": precision.device, "dtype": precision.name, "texts": texts})  # fmt: skip
        path = user_cache("vectors") / f"{hashlib.sha256(blob.encode()).hexdigest()[:24]}.npy"
        with contextlib.suppress(OSError, ValueError):
            vectors = np.load(path)
            if vectors.shape[0] == len(texts):
                return vectors
        vectors = unit(self._encode(texts))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}.npy")
        np.save(tmp, vectors)
        tmp.replace(path)  # whole or absent: a reader never sees half a file
        return vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        from phi1.curate.embed import encode, load_encoder

        if self.encoder is None:
            self.encoder = load_encoder(self.spec, self.max_tokens, self.device, self.bf16)
        return encode(self.encoder, texts)

    def _reused(self, doc_id: str) -> np.ndarray | None:
        while doc_id not in self.known and self.next_file < len(self.files):
            ids_path = self.files[self.next_file]
            self.next_file += 1
            vectors = np.load(ids_path.with_name(ids_path.name.replace("ids-", "emb-")))
            self.known = dict(zip(np.load(ids_path).tolist(), vectors, strict=True))
        return self.known.get(doc_id)

    def cosine(self, path: Path, folder: str, rows: np.ndarray) -> np.ndarray:
        if not len(rows) or not len(self.bench):
            return np.zeros((len(rows), len(self.bench)))
        ids = pq.read_table(path, columns=["id"]).column("id").take(rows).to_pylist()
        found = [self._reused(i) for i in ids] if folder == self.reuse_folder else [None] * len(ids)
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            texts = read_texts(path, rows[missing])
            for i, v in zip(missing, self._encode(texts), strict=True):
                found[i] = v
        return unit(np.stack(found)) @ self.bench.T


class EmbeddingDetector(Detector):
    name = "embedding"

    def __init__(self, vectors: Vectors) -> None:
        self.vectors = vectors

    @classmethod
    def make(cls, vectors: Any = None, judge: Any = None) -> EmbeddingDetector | None:
        return cls(vectors) if vectors is not None else None

    @classmethod
    def scanner(cls) -> EmbeddingDetector:
        return cls(None)  # type: ignore[arg-type]  # scanning needs no vectors

    def scan(self, shard: ShardText) -> list[Function] | None:
        """Corpus code: its functions of a runnable problem's arity (a file's embedding is its whole text,
        where a rephrased benchmark function among others is lost: each is embedded on its own)."""
        if shard.kind in SWEPT_KINDS or not shard.thresholds.function_k or not shard.embedding:
            return None
        arities = set(runnable(shard.source)[1])
        return [f for row, text in zip(shard.rows.tolist(), shard.texts, strict=True)
                for f in functions_of(text, shard.kind, row) if f.arity in arities]  # fmt: skip

    def fold(self, run: Any, k: int, rows: np.ndarray, scanned: list[Function] | None, found: Any) -> None:
        shard = run.shards[k]
        docs = shard.offset + rows
        cos = self.vectors.cosine(shard.path, shard.folder, rows)
        run.cosine = cos  # the execution detector's nearest candidates read this shard's cosines
        found.add_cosine(docs, cos)
        for i, j in zip(*np.nonzero(cos >= run.thresholds.embedding), strict=True):
            found.add(int(docs[i]), int(j), self.name, round(float(cos[i, j]), 4), True)
        if scanned:  # what execution and the judge take as each function's nearest problems
            run.functions = [replace(f, sample=shard.offset + f.sample) for f in scanned]
            run.function_cosine = self._function_cosine(scanned)

    def _function_cosine(self, functions: list[Function]) -> np.ndarray:
        """[2, functions, problems]: each function's cosine to each problem by its source, and by its docstring
        alone (-1 without one): a rephrased task's words can sit nearer its problem than the rewritten code
        does (measured in docs/cli.md). Two views, each ranked on its own: the larger of two cosines would let
        the code's neighbours crowd out the docstring's."""
        source = unit(self.vectors.encode([f.source for f in functions])) @ self.vectors.bench.T
        words = np.full_like(source, -1.0)
        docs = [docstring(f.source) for f in functions]
        have = [i for i, d in enumerate(docs) if d]
        if have:
            words[have] = unit(self.vectors.encode([docs[i] for i in have])) @ self.vectors.bench.T
        return np.stack([source, words])


def docstring(source: str) -> str:
    """The docstring of the (first) function in `source`, or ''."""
    tree = parse_quiet(source)
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)), None) if tree else None
    return (ast.get_docstring(node) or "") if node else ""
