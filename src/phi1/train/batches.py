"""The data order: a seeded permutation per epoch, indexed by the optimizer step (an exact resume sees the
same batches). What each sequence holds, and its labels, is `phi1.train.collate`'s."""

from __future__ import annotations

from typing import Any

import numpy as np


class Batches:
    """The global batch of step s: positions s*B ... s*B+B-1 of an endless stream of seeded permutations."""

    def __init__(self, data: Any, batch_size: int, seed: int) -> None:
        """`data`: anything with n_sequences (a token set, or its exercises packed whole)."""
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.data.n_sequences)}
        return self._perms[epoch]

    def indices(self, step: int) -> np.ndarray:
        n = self.data.n_sequences
        positions = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        return np.array([self._perm(int(p // n))[p % n] for p in positions])

    def epochs_at(self, step: int) -> float:
        return step * self.batch_size / self.data.n_sequences
