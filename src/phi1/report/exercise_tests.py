"""The report's section on how strong the exercises' tests are: the mutation scores of the kept exercises
and of those rejected as weak (figure), and what the repair round did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from phi1.report.common import empty, link, save

FIGURE = "mutation_scores"


def exercise_tests_section(m: dict[str, Any], fig_dir: Path) -> list[str]:
    """Nothing where no exercise was scored (no exercises stage, or `synth.max_mutants=0`)."""
    mutation = (m["exercises"] or {}).get("mutation") or {}
    if not mutation.get("scored") and not sum(mutation.get("histogram", {}).get("weak", {}).values()):
        return []
    hist, threshold = mutation["histogram"], mutation["min_mutation_score"]
    c = m["exercises"]["counts"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = list(hist["kept"])
    kept = [hist["kept"][b] for b in bins]
    weak = [hist["weak"][b] for b in bins]
    if sum(kept) + sum(weak):
        x = range(len(bins))
        ax.bar(x, kept, color="tab:green", label="kept")
        ax.bar(x, weak, bottom=kept, color="tab:red", label="rejected: weak_tests")
        ax.set_xticks(list(x), [b if b == "1.0" else f"{b}-" for b in bins], fontsize=8)
        ax.axvline(threshold * 10 - 0.5, color="black", linestyle="--", label=f"synth.min_mutation_score {threshold:g}")
        ax.set_xlabel("mutation score of the exercise's tests (killed / mutants run)")
        ax.set_ylabel("exercises")
        ax.legend(fontsize=8)
    else:
        empty(ax, "no exercise was scored")
    ax.set_title("How strong the exercises' tests are")
    save(fig, fig_dir / f"{FIGURE}.png")
    weak_n = c["rejected"].get("weak_tests", 0)
    return [
        "## Exercise tests",
        "",
        f"![mutation scores](figures/{FIGURE}.png)",
        "",
        f"- {mutation['scored']:,} kept exercises scored, mean mutation score {mutation['mean'] or '-'} "
        f"(the share of up to {mutation['settings']['max_mutants']} mutants of its solution that its tests "
        "reject; `phi1 testscore` measures the same on any dataset, docs/testscore.md)",
        f"- {c['repaired']:,} kept after a repair round (a failing or weak first answer sent back to the "
        f"teacher), {weak_n:,} rejected as `weak_tests` (below {threshold:g}) ({link('exercises')})",
        "",
    ]
