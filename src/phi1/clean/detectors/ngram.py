"""`ngram`: the sample shares a word n-gram (13 by default: the paper's and GPT-3's rule) with a benchmark
problem's docstring or solution. Scanned in the workers; the score is the number of shared n-grams."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from phi1.clean.detectors.base import Detector, Hit, ShardText
from phi1.clean.problems import BenchmarkProblem

_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ngram_index(problems: Sequence[BenchmarkProblem], n: int) -> dict[tuple[str, ...], int]:
    """Every n-gram of every problem's docstring and solution -> the problem it belongs to."""
    index: dict[tuple[str, ...], int] = {}
    for i, p in enumerate(problems):
        for gram in ngrams(p.prompt, n) | ngrams(p.solution, n):
            index.setdefault(gram, i)
    return index


@lru_cache(maxsize=4)
def _index(problems: tuple[BenchmarkProblem, ...], n: int) -> dict[tuple[str, ...], int]:
    return ngram_index(problems, n)


class NgramDetector(Detector):
    name = "ngram"

    def scan(self, shard: ShardText) -> list[Hit]:
        index = _index(tuple(shard.problems), shard.thresholds.ngram_n)
        hits: list[Hit] = []
        for row, text in zip(shard.rows.tolist(), shard.texts, strict=True):
            counts: dict[int, int] = {}
            for gram in ngrams(text, shard.thresholds.ngram_n):
                j = index.get(gram)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            hits.extend((row, j, self.name, float(n), True) for j, n in counts.items())
        return hits

    def fold(self, run: Any, k: int, rows: np.ndarray, scanned: list[Hit], found: Any) -> None:
        offset = run.shards[k].offset
        for row, j, detector, score, fires in scanned:
            found.add(offset + row, j, detector, score, fires)
