"""ReCode's robustness metrics (Wang et al. 2022, section 3.3), per category, over s variants per problem.

For each problem and each sample index j (greedy decoding: j = 0 only), the nominal result is whether the
nominal prompt's j-th completion passes, and the worst case whether the j-th completion of every one of the
s variants passes:
- Robust Pass_s@1: the mean of the worst case;
- Robust Drop_s@1: (nominal pass@1 - Robust Pass_s@1) / nominal pass@1;
- Robust Relative_s@1: the share of (problem, j) whose result changes under some variant, either way
  (a pass turned into a fail, or a fail into a pass).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class VariantLike(Protocol):
    category: str
    nominal: str
    task_id: str
    perturbation: str


def robustness(
    variants: Sequence[VariantLike], passed: Mapping[tuple[str, int], bool], s: int
) -> dict[str, dict[str, Any]]:
    """`passed[(task_id, completion_id)]` for the nominal problems and every variant."""
    completions: dict[str, list[int]] = defaultdict(list)
    for tid, cid in passed:
        completions[tid].append(cid)
    by_category: dict[str, dict[str, list[VariantLike]]] = defaultdict(lambda: defaultdict(list))
    for v in variants:
        by_category[v.category][v.nominal].append(v)
    return {cat: _category(groups, passed, completions, s) for cat, groups in by_category.items()}


def _category(
    groups: Mapping[str, list[VariantLike]],
    passed: Mapping[tuple[str, int], bool],
    completions: Mapping[str, list[int]],
    s: int,
) -> dict[str, Any]:
    nominal, worst, changed = [], [], []
    for nom, vs in groups.items():
        cids = [c for c in completions.get(nom, []) if all((v.task_id, c) in passed for v in vs)]
        if not cids:
            continue  # not judged (a subset of the samples)
        n_ok = [passed[(nom, c)] for c in cids]
        w_ok = [all(passed[(v.task_id, c)] for v in vs) for c in cids]
        b_ok = [any(passed[(v.task_id, c)] for v in vs) for c in cids]
        nominal.append(sum(n_ok) / len(cids))
        worst.append(sum(w_ok) / len(cids))
        changed.append(sum(n != w or n != b for n, w, b in zip(n_ok, w_ok, b_ok, strict=True)) / len(cids))
    every = [v for vs in groups.values() for v in vs]
    nominal_rate, robust_rate = _mean(nominal), _mean(worst)
    return {
        "problems": len(nominal),
        "variants": s,
        "nominal_pass@1": _round(nominal_rate),
        "robust_pass@1": _round(robust_rate),
        "robust_drop@1": _round((nominal_rate - robust_rate) / nominal_rate)
        if nominal_rate and robust_rate is not None
        else None,
        "robust_relative@1": _round(_mean(changed)),
        "generated": len(every),
        "unchanged": sum(v.perturbation == "unchanged" for v in every),
        "passed": sum(all(passed.get((v.task_id, c), False) for c in completions.get(v.task_id, [0])) for v in every),
        "transformations": dict(sorted(Counter(v.perturbation for v in every).items())),
    }


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _round(x: float | None) -> float | None:
    return round(x, 4) if x is not None else None
