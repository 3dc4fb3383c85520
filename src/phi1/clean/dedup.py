"""Deduplication across all training sources together: exact (normalised text) and near (MinHash LSH with
datatrove's defaults: word 5-grams, 14 bands x 8 rows, a Jaccard threshold of about 0.72), each pair that
shares a bucket verified by its signatures' estimated Jaccard (`clean.minhash_threshold`), which datatrove
does not do: banding alone also joins pairs far below its threshold.

At scale it runs the datatrove way, in bounded memory: each shard's documents become an exact digest, one
64-bit key per LSH band and their signature (`doc_hashes`, on any worker), saved beside the shard; then, band
by band, the keys of all documents are sorted on disk-backed arrays to find the buckets they share
(`duplicate_of`): 16 bytes per document in memory for one band at a time, never the texts, and the signatures
read from disk only for the pairs a band joins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from phi1.minhash import estimated_jaccard, near_duplicates, signatures


def normalise(text: str) -> str:
    """Whitespace-insensitive form: trailing spaces and blank lines do not make a file new."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines() if line.strip())


def digest(text: str) -> int:
    """64 bits of BLAKE2b of the normalised text (10^9 documents hold a collision with a ~3% chance)."""
    raw = hashlib.blake2b(normalise(text).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(raw, "little")


def exact_duplicates(texts: Sequence[str]) -> np.ndarray:
    """True for every text whose normalised form appeared earlier."""
    return ~_firsts(np.array([digest(t) for t in texts], dtype=np.uint64))


def minhash_duplicates(
    texts: Sequence[str], ngram: int = 5, bands: int = 14, rows: int = 8, workers: int | None = None,
    threshold: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(is a near-duplicate of an earlier text, index of that text or -1), all in memory."""
    sigs = signatures(texts, ngram, bands * rows, workers=workers)
    return near_duplicates(sigs, bands, rows, threshold)


# -- at scale: hashes per shard, buckets by sorting --------------------------------------------------------


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 that spreads every input bit over the output."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """[n, bands] uint64: one key per band of each signature; equal bands give equal keys, different ones
    collide with probability ~2^-64 (each value is mixed before it is folded in)."""
    keys = np.zeros((len(sigs), bands), dtype=np.uint64)
    for b in range(bands):
        h = np.full(len(sigs), np.uint64(b + 1), dtype=np.uint64)
        for r in range(rows):
            h = _mix64(h ^ _mix64(sigs[:, b * rows + r].astype(np.uint64)))
        keys[:, b] = h
    return keys


def doc_hashes(texts: Sequence[str], ngram: int, bands: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(exact digests [n] uint64, LSH band keys [n, bands] uint64, signatures [n, bands * rows] uint32) of one
    shard's texts (a signature's values are below 2^32)."""
    digests = np.array([digest(t) for t in texts], dtype=np.uint64)
    sigs = signatures(texts, ngram, bands * rows, workers=1)
    return digests, band_keys(sigs, bands, rows), sigs.astype(np.uint32)


def _firsts(keys: np.ndarray) -> np.ndarray:
    """True where a key appears for the first time."""
    first = np.zeros(len(keys), dtype=bool)
    first[np.unique(keys, return_index=True)[1]] = True
    return first


def first_copies(digests: np.ndarray) -> np.ndarray:
    """For each document, the index of the first document with its digest (itself when it is the first)."""
    _, first, inverse = np.unique(digests, return_index=True, return_inverse=True)
    return first[inverse.ravel()]


def duplicate_of(
    digests: np.ndarray, key_files: Sequence[Path], bands: int, sig_files: Sequence[Path] = (),
    threshold: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(exact duplicate [N] bool, near duplicate of [N] int64, -1 if none, joined [N] bool: a band put it in an
    earlier document's bucket) over documents in the order of preference, given every document's digest and
    the .npy files of band keys and of signatures (one each per shard, in order; the signatures only where
    `threshold` > 0).

    Exact duplicates of an earlier document are out first; among the rest, a document sharing a bucket of any
    band with an earlier one is a near duplicate of the earliest such (the first band that has one) whose
    estimated Jaccard reaches `threshold`, checked against the bucket's first document, then the one just
    before it; chains lead to a kept document. The same decisions as `minhash_duplicates` on the texts. A joined
    document that is no near duplicate is one the Jaccard check kept (an LSH false positive)."""
    exact = ~_firsts(digests)
    alive = np.flatnonzero(~exact)
    dup = np.full(len(digests), -1, dtype=np.int64)
    joined = np.zeros(len(digests), dtype=bool)
    verify = _Signatures(sig_files) if threshold > 0 else None
    for b in range(bands):
        column = np.concatenate([np.load(p, mmap_mode="r")[:, b] for p in key_files])[alive]
        order = np.argsort(column, kind="stable")  # equal keys stay in document order
        ordered = column[order]
        starts = np.ones(len(order), dtype=bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        head = order[np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))]
        later = np.flatnonzero(~starts)
        members, firsts, previous = alive[order[later]], alive[head[later]], alive[order[later - 1]]
        unset = dup[members] < 0
        members, firsts, previous = members[unset], firsts[unset], previous[unset]
        joined[members] = True
        if verify is None:
            dup[members] = firsts
        else:
            ok = verify.jaccard(members, firsts) >= threshold
            dup[members[ok]] = firsts[ok]
            rest = ~ok & (previous != firsts)
            ok = verify.jaccard(members[rest], previous[rest]) >= threshold
            dup[members[rest][ok]] = previous[rest][ok]
        del column, order, ordered, starts, head
    while True:  # pointer jumping: each document ends up pointing at the root of its chain
        has = dup >= 0
        parent = np.where(has, dup, 0)
        nxt = np.where(has & (dup[parent] >= 0), dup[parent], dup)
        if np.array_equal(nxt, dup):
            return exact, dup, joined
        dup = nxt


class _Signatures:
    """Every shard's signatures, memory-mapped: rows are read for the pairs a band joins, not all of them."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.maps = [np.load(p, mmap_mode="r") for p in files]
        self.starts = np.cumsum([0] + [len(m) for m in self.maps])

    def rows(self, docs: np.ndarray) -> np.ndarray:
        if len(docs) and docs.max() >= self.starts[-1]:
            raise ValueError(f"{len(self.maps)} signature files hold {self.starts[-1]} documents, not {docs.max() + 1}")
        width = self.maps[0].shape[1] if self.maps else 0
        out = np.empty((len(docs), width), dtype=np.uint32)
        shard = np.searchsorted(self.starts, docs, side="right") - 1
        for k in np.unique(shard):
            at = shard == k
            out[at] = self.maps[k][docs[at] - self.starts[k]]
        return out

    def jaccard(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return estimated_jaccard(self.rows(a), self.rows(b))
