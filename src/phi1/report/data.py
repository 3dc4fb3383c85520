"""The report's data sections: the funnel per source, curation (teacher scores, the classifier), the
synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from phi1.report.common import empty, link, save, table


def data_section(m: dict[str, Any], fig_dir: Path) -> list[str]:
    """The data funnel per source (figure) and what each data stage kept."""
    lines: list[str] = []
    fig, ax = plt.subplots(figsize=(8, 4))
    funnel = (m["clean"] or {}).get("funnel", {})
    bars: list[tuple[str, list[tuple[str, int]]]] = []
    if m["filtered"]:
        f = m["filtered"]["counts"]
        code_clean = funnel.get("code", {})
        bars.append(
            (
                "code",
                [
                    ("read", f["read"]),
                    ("readable", f["scored"]),
                    ("kept by classifier", f["kept"]),
                    ("after dedup + decontamination", code_clean.get("kept", 0)),
                ],
            )
        )
    if m["textbook"]:
        c = m["textbook"]["counts"]
        bars.append(
            (
                "textbook",
                [
                    ("requested", c["requested"]),
                    ("code parses", c["kept"]),
                    ("after dedup + decontamination", funnel.get("textbook", {}).get("kept", 0)),
                ],
            )
        )
    if m["exercises"]:
        c = m["exercises"]["counts"]
        bars.append(
            (
                "exercises",
                [
                    ("requested", c["requested"]),
                    (f"verified, strong tests ({c.get('repaired', 0)} repaired)", c["verified"]),
                    ("after dedup + decontamination", funnel.get("exercise", {}).get("kept", 0)),
                ],
            )
        )
    if bars:
        labels, values, colors = [], [], []
        palette = {"code": "tab:blue", "textbook": "tab:orange", "exercises": "tab:green"}
        for source, steps in bars:
            for step, value in steps:
                labels.append(f"{source}: {step}")
                values.append(value)
                colors.append(palette[source])
        ax.barh(range(len(values))[::-1], values, color=colors)
        ax.set_yticks(range(len(values))[::-1], labels, fontsize=8)
        for y, v in zip(range(len(values))[::-1], values, strict=True):
            ax.text(v, y, f" {v:,}", va="center", fontsize=8)
        ax.set_xlabel("documents")
    else:
        empty(ax, "no data stages ran")
    ax.set_title("Data funnel per source")
    save(fig, fig_dir / "funnel.png")

    lines += ["## Data", "", "![funnel](figures/funnel.png)", ""]
    rows = []
    if m["corpus"]:
        c = m["corpus"]["counts"]
        rows.append(["corpus", c["documents"] + sum(c["skipped"].values()), c["documents"], c["skipped"],
                     link("corpus")])  # fmt: skip
    if m["filtered"]:
        f = m["filtered"]["counts"]
        rows.append(["curated (classifier)", f["scored"], f"{f['kept']:,} (~{f['kept_tokens_approx']:,} tokens)",
                     {"below the cut": f["scored"] - f["kept"]}, link("filtered")])  # fmt: skip
    for kind, f in funnel.items():
        removed = {k: v for k, v in f.items() if k not in ("in", "kept")}
        rows.append([f"clean: {kind}", f["in"], f["kept"], removed, link("clean")])
    if rows:
        lines += table(["step", "in", "kept", "removed (by reason)", "manifest"], rows)
    if m["tokens"]:
        files = m["tokens"]["index"]["files"]
        sets = [[n, f["tokens"], f["sequences"], f["documents"], f.get("by_kind")] for n, f in files.items()]
        lines += table(["token set", "tokens", "sequences", "documents", "by kind"], sets)
    return lines


def curation_section(m: dict[str, Any], fig_dir: Path) -> list[str]:
    """Teacher scores and the classifier's edu_score histogram (figure), the classifier's metrics."""
    lines: list[str] = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    if m["annotations"]:
        hist = m["annotations"]["score_histogram"]
        axes[0].bar(list(hist), list(hist.values()), color="tab:purple")
        axes[0].set_xlabel("teacher score (0-5)")
        axes[0].set_ylabel("files")
        axes[0].set_title("Teacher annotations")
    else:
        empty(axes[0], "no annotations")
    if m["filtered"]:
        h = m["filtered"]["score_histogram"]
        edges = h["edges"]
        axes[1].bar(edges[:-1], h["counts"], width=edges[1] - edges[0], align="edge", color="tab:blue")
        rule = m["filtered"]["rule"]
        if rule.get("keep") == "threshold":  # a top fraction or a token budget keeps by rank, not by a line
            axes[1].axvline(rule["threshold"], color="red", linestyle="--", label="keep threshold")
            axes[1].legend(fontsize=8)
        axes[1].set_xlabel("edu_score (classifier probability)")
        axes[1].set_ylabel("files")
        cm = (m["classifier"] or {}).get("metrics", {})
        axes[1].set_title(
            f"Classifier: acc {cm.get('accuracy')}, F1 {cm.get('macro_f1')}, AUC {cm.get('roc_auc')}", fontsize=9
        )
    else:
        empty(axes[1], "no classifier")
    save(fig, fig_dir / "edu_scores.png")
    lines += ["## Curation", "", "![edu scores](figures/edu_scores.png)", ""]
    if m["classifier"]:
        cm = m["classifier"]["metrics"]
        lines.append(
            f"- classifier ({m['classifier']['model']}): accuracy {cm['accuracy']}, macro-F1 {cm['macro_f1']}, "
            f"ROC-AUC {cm['roc_auc']}, confusion matrix {cm['confusion_matrix']} on {cm['n_test']} held-out "
            f"files ({link('classifier')})"
        )
    lines.append("")
    return lines


def synthetic_section(m: dict[str, Any], fig_dir: Path) -> list[str]:
    """Diversity of the textbook and the exercises (figure) and their counts."""
    lines: list[str] = []
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    names = [n for n in ("textbook", "exercises") if m[n]]
    if names:
        axes[0].bar(
            names,
            [m[n]["diversity"].get("distinct_topic_audience_style", 0) for n in names],
            color=["tab:orange", "tab:green"][: len(names)],
        )
        axes[0].set_ylabel("distinct combinations")
        axes[0].set_title("Topic x audience x style")
        axes[1].bar(
            names,
            [m[n]["diversity"].get("mean_pairwise_minhash_similarity", 0) for n in names],
            color=["tab:orange", "tab:green"][: len(names)],
        )
        axes[1].set_ylabel("mean pairwise Jaccard (MinHash)")
        axes[1].set_title("Similarity between samples (lower = more diverse)")
    else:
        empty(axes[0], "no synthetic data")
        empty(axes[1], "")
    save(fig, fig_dir / "diversity.png")
    lines += ["## Synthetic data", "", "![diversity](figures/diversity.png)", ""]
    rows = []
    for n in names:
        d, c = m[n]["diversity"], m[n]["counts"]
        kept = c.get("kept", c.get("verified"))
        dropped = c.get("dropped", c.get("rejected"))
        diverse = d.get("distinct_topic_audience_style"), d.get("mean_pairwise_minhash_similarity")
        rows.append([n, c["requested"], kept, dropped, *diverse, link(n)])
    if rows:
        header = ["data", "requested", "kept", "dropped (by reason)", "topic/audience/style combinations",
                  "mean pairwise MinHash similarity", "manifest"]  # fmt: skip
        lines += table(header, rows)
    return lines
