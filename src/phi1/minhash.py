"""MinHash signatures and LSH banding, vectorised.

A signature uses the classic universal hashing of datasketch's legacy scheme (`a*h + b mod 2^61-1` over
32-bit shingle hashes), computed for all shingles of a document in one numpy expression instead of one
`update()` per shingle, with CRC32 as the shingle hash instead of SHA-1, and across processes.
Duplicates are found with the banding of datatrove: documents that share any band bucket with an earlier
document are its near-duplicates.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

_MERSENNE = np.uint64((1 << 61) - 1)
_MAX_HASH = np.uint64((1 << 32) - 1)
_WORD = re.compile(r"\w+", re.UNICODE)


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of the permutations, drawn as datasketch's legacy scheme draws them."""
    gen = np.random.RandomState(seed)
    pairs = np.array(
        [
            (gen.randint(1, _MERSENNE, dtype=np.uint64), gen.randint(0, _MERSENNE, dtype=np.uint64))
            for _ in range(num_perm)
        ],
        dtype=np.uint64,
    )
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def shingles(text: str, n: int) -> set[str]:
    """Word n-grams of the lower-cased text (the whole text if it has fewer than n words)."""
    words = _WORD.findall(text.lower())
    if len(words) <= n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def signature(text: str, n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    hv = np.fromiter((zlib.crc32(s.encode()) for s in shingles(text, n)), dtype=np.uint64)
    if hv.size == 0:
        return np.full(len(a), _MAX_HASH, dtype=np.uint64)
    phv = ((hv[:, None] * a + b) % _MERSENNE) & _MAX_HASH
    return np.minimum(phv.min(axis=0), _MAX_HASH)


def _signatures_chunk(args: tuple[Sequence[str], int, int, int]) -> np.ndarray:
    texts, n, num_perm, seed = args
    a, b = permutations(num_perm, seed)
    out = np.empty((len(texts), num_perm), dtype=np.uint64)
    for i, text in enumerate(texts):
        out[i] = signature(text, n, a, b)
    return out


def signatures(
    texts: Sequence[str], n: int = 5, num_perm: int = 112, seed: int = 1, workers: int | None = None
) -> np.ndarray:
    """[len(texts), num_perm] uint64 signatures, computed on `workers` processes."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(texts) < 2000:
        return _signatures_chunk((texts, n, num_perm, seed))
    size = (len(texts) + workers * 4 - 1) // (workers * 4)
    chunks = [(texts[i : i + size], n, num_perm, seed) for i in range(0, len(texts), size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return np.concatenate(list(pool.map(_signatures_chunk, chunks)))


def near_duplicates(sigs: np.ndarray, bands: int, rows: int, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """For every document, whether it shares a band bucket with an earlier one, and which one (-1 if none).
    Earlier documents win, so the order of `sigs` is the order of preference.

    With a `threshold`, a shared bucket counts only where the two signatures' estimated Jaccard reaches it:
    banding alone also pairs documents far below the S-curve's midpoint (14 x 8 joins one pair in 20 at a
    Jaccard of 0.5). A document is checked against the bucket's first document, then the one just before it."""
    if sigs.shape[1] < bands * rows:
        raise ValueError(f"signatures have {sigs.shape[1]} permutations, bands x rows needs {bands * rows}")
    duplicate_of = np.full(len(sigs), -1, dtype=np.int64)
    for band in range(bands):
        # One bytes key per document and band; a dict maps a bucket to its first and its latest document.
        block = np.ascontiguousarray(sigs[:, band * rows : (band + 1) * rows])
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * rows))).ravel()
        first: dict[bytes, int] = {}
        last: dict[bytes, int] = {}
        for i, key in enumerate(keys.tolist()):
            j = first.setdefault(key, i)
            if j != i and duplicate_of[i] < 0:
                for cand in (j, last[key]):
                    if threshold <= 0 or estimated_jaccard(sigs[i], sigs[cand]) >= threshold:
                        duplicate_of[i] = cand
                        break
            last[key] = i
    # A document whose only match was itself a duplicate still points at a kept one through the chain.
    for i in range(len(duplicate_of)):
        j = duplicate_of[i]
        while j >= 0 and duplicate_of[j] >= 0:
            j = duplicate_of[j]
        duplicate_of[i] = j
    return duplicate_of >= 0, duplicate_of


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The share of equal values of signatures `a` and `b` (rows of equal shape): MinHash's Jaccard estimate."""
    return (np.asarray(a) == np.asarray(b)).mean(axis=-1)


def jaccard_estimate(sigs: np.ndarray) -> np.ndarray:
    """Pairwise estimated Jaccard similarity, [n, n], in row blocks to bound memory."""
    n = len(sigs)
    out = np.empty((n, n), dtype=np.float32)
    step = max(1, 2_000_000 // max(1, n * sigs.shape[1]))
    for start in range(0, n, step):
        out[start : start + step] = (sigs[start : start + step, None, :] == sigs[None, :, :]).mean(axis=2)
    return out


def mean_pairwise_similarity(texts: Iterable[str], n: int = 5, num_perm: int = 128) -> float:
    """Mean estimated Jaccard similarity over all distinct pairs: a measure of (lack of) diversity."""
    texts = list(texts)
    if len(texts) < 2:
        return 0.0
    sims = jaccard_estimate(signatures(texts, n, num_perm, workers=1))
    upper = sims[np.triu_indices(len(texts), k=1)]
    return float(upper.mean())
