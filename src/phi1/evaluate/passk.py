"""pass@k with the unbiased estimator of Chen et al. (2021)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k): the chance that at least one of k samples drawn from n passes."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    # The product form avoids the huge binomials of the closed form.
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def mean_pass_at_k(counts: Iterable[tuple[int, int]], ks: Sequence[int]) -> dict[str, float]:
    """Mean pass@k over problems given (samples, correct) per problem, for every k no larger than the
    smallest number of samples of any problem."""
    counts = list(counts)
    if not counts:
        return {}
    n_min = min(n for n, _ in counts)
    return {f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in ks if k <= n_min}
