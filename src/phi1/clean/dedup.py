"""Deduplication across all training sources together: exact (normalised text) and near (MinHash LSH with
datatrove's defaults: word 5-grams, 14 bands x 8 rows, a Jaccard threshold of about 0.72)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from phi1.minhash import near_duplicates, signatures


def normalise(text: str) -> str:
    """Whitespace-insensitive form: trailing spaces and blank lines do not make a file new."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines() if line.strip())


def exact_duplicates(texts: Sequence[str]) -> np.ndarray:
    """True for every text whose normalised form appeared earlier."""
    seen: set[bytes] = set()
    dup = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        digest = hashlib.sha1(normalise(text).encode("utf-8", "surrogatepass")).digest()
        if digest in seen:
            dup[i] = True
        else:
            seen.add(digest)
    return dup


def minhash_duplicates(
    texts: Sequence[str], ngram: int = 5, bands: int = 14, rows: int = 8, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(is a near-duplicate of an earlier text, index of that text or -1)."""
    sigs = signatures(texts, ngram, bands * rows, workers=workers)
    return near_duplicates(sigs, bands, rows)
