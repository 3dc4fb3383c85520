"""The report's robustness section (`evaluate.perturb`): ReCode's metrics per benchmark and category, base and
finetuned, and a figure of nominal against robust pass@1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from phi1.report.common import link, pct, save, table

FIGURE = "robustness"


def robustness_section(m: dict[str, Any], fig_dir: Path) -> list[str]:
    """Nothing when the run measured no robustness (evaluate.perturb empty)."""
    rows = _rows((m["eval"] or {}).get("results", {}))
    if not rows:
        return []
    _figure(rows, fig_dir / f"{FIGURE}.png")
    variants = sorted({r["variants"] for r in rows})
    header = ["model", "benchmark", "category", "problems", "nominal pass@1", f"robust pass@1 (s={variants[0]})",
              "robust drop@1", "robust relative@1", "variants generated"]  # fmt: skip
    body = [[r["model"], r["benchmark"], r["category"], r["problems"], pct(r["nominal_pass@1"]),
             pct(r["robust_pass@1"]), pct(r["robust_drop@1"]), pct(r["robust_relative@1"]), r["generated"]]
            for r in rows]  # fmt: skip
    return [
        "## Robustness to prompt style",
        "",
        "ReCode's metrics (Wang et al. 2022): a problem passes robustly only if every one of its s perturbed "
        "variants passes; drop is the share of nominal passes lost, relative the share of results any variant "
        "changes. `syntax` varies partial code (the prompt plus the first half of the canonical solution), "
        f"which is its own nominal. Source: {link('eval')}; the perturbed problems under "
        "`eval/<model>/<benchmark>/perturbed/`.",
        "",
        f"![robustness](figures/{FIGURE}.png)",
        "",
        *table(header, body),
    ]


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"model": label, "benchmark": b, "category": c, **metrics}
            for label, per in results.items() for b, r in per.items()
            for c, metrics in (r.get("robustness") or {}).items()]  # fmt: skip


def _figure(rows: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(rows)), 3.8))
    width = 0.38
    for k, (key, label) in enumerate((("nominal_pass@1", "nominal"), ("robust_pass@1", "robust (worst of s)"))):
        vals = [100 * (r[key] or 0.0) for r in rows]
        xs = [i + (k - 0.5) * width for i in range(len(rows))]
        ax.bar(xs, vals, width, label=label)
        for x, v in zip(xs, vals, strict=True):
            ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), [f"{r['model']}\n{r['benchmark']}\n{r['category']}" for r in rows], fontsize=7)
    ax.set_ylim(0, max(5.0, ax.get_ylim()[1] * 1.2))
    ax.set_ylabel("pass@1 (%)")
    ax.set_title("nominal vs robust pass@1 per perturbation category")
    ax.legend(fontsize=8)
    save(fig, path)
