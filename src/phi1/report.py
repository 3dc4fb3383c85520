"""`phi1 report`: report.md and PNG figures from a run directory's manifests. Every number in the report
links to the manifest it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from phi1.errors import Phi1Error
from phi1.rundir import save_text
from phi1.stages import STAGES

FIGURES = ("funnel", "edu_scores", "diversity", "loss_curves", "pass_at_1", "similarity_split", "stage_times")


def _manifest(run_dir: Path, name: str) -> dict[str, Any] | None:
    path = run_dir / name / "manifest.json"
    if not path.exists():
        return None
    m = json.loads(path.read_text())
    return m if m.get("status") == "complete" else None


def _metrics(run_dir: Path, phase: str) -> list[dict[str, Any]]:
    path = run_dir / phase / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _link(name: str) -> str:
    return f"[{name}/manifest.json]({name}/manifest.json)"


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def write_report(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise Phi1Error(f"{run_dir}: no such run directory")
    # Every folder the registry's stages write, in the recipe's order.
    m = {name: _manifest(run_dir, name) for stage in STAGES.values() for name in stage.steps}
    fig_dir = run_dir / "figures"
    lines = [f"# phi1 run report: `{run_dir.name}`", ""]
    lines += _data_section(m, fig_dir)
    lines += _curation_section(m, fig_dir)
    lines += _synthetic_section(m, fig_dir)
    lines += _training_section(m, fig_dir, run_dir)
    lines += _evaluation_section(m, fig_dir, run_dir)
    lines += _teacher_and_time_section(m, fig_dir)
    lines += _precision_lines(m)
    save_text(run_dir / "report.md", "\n".join(lines))
    return {"report": str(run_dir / "report.md"), "figures": [str(fig_dir / f"{f}.png") for f in FIGURES]}


def _data_section(m: dict[str, Any], fig_dir: Path) -> list[str]:
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
                    ("verified in sandbox", c["verified"]),
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
        _empty(ax, "no data stages ran")
    ax.set_title("Data funnel per source")
    _save(fig, fig_dir / "funnel.png")

    lines += ["## Data", "", "![funnel](figures/funnel.png)", ""]
    if m["corpus"]:
        c = m["corpus"]["counts"]
        lines.append(f"- corpus: {c['documents']:,} files read, skipped {c['skipped'] or 'none'} ({_link('corpus')})")
    if m["filtered"]:
        f = m["filtered"]["counts"]
        lines.append(
            f"- curated: {f['kept']:,} of {f['scored']:,} files kept, ~{f['kept_tokens_approx']:,} tokens "
            f"({_link('filtered')})"
        )
    if m["clean"]:
        lines.append(
            f"- clean: {m['clean']['counts']['kept']:,} of {m['clean']['counts']['in']:,} samples kept; "
            f"removed per source: {json.dumps(funnel)} ({_link('clean')})"
        )
    if m["tokens"]:
        lines.append(f"- tokens: {json.dumps(m['tokens']['counts'])} ({_link('tokens')})")
    lines.append("")
    return lines


def _curation_section(m: dict[str, Any], fig_dir: Path) -> list[str]:
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
        _empty(axes[0], "no annotations")
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
        _empty(axes[1], "no classifier")
    _save(fig, fig_dir / "edu_scores.png")
    lines += ["## Curation", "", "![edu scores](figures/edu_scores.png)", ""]
    if m["classifier"]:
        cm = m["classifier"]["metrics"]
        lines.append(
            f"- classifier ({m['classifier']['model']}): accuracy {cm['accuracy']}, macro-F1 {cm['macro_f1']}, "
            f"ROC-AUC {cm['roc_auc']}, confusion matrix {cm['confusion_matrix']} on {cm['n_test']} held-out "
            f"files ({_link('classifier')})"
        )
    lines.append("")
    return lines


def _synthetic_section(m: dict[str, Any], fig_dir: Path) -> list[str]:
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
        _empty(axes[0], "no synthetic data")
        _empty(axes[1], "")
    _save(fig, fig_dir / "diversity.png")
    lines += ["## Synthetic data", "", "![diversity](figures/diversity.png)", ""]
    for n in names:
        d, c = m[n]["diversity"], m[n]["counts"]
        lines.append(
            f"- {n}: {json.dumps(c)}; {d.get('distinct_topic_audience_style')} topic/audience/style "
            f"combinations, mean pairwise MinHash similarity {d.get('mean_pairwise_minhash_similarity')} "
            f"({_link(n)})"
        )
    lines.append("")
    return lines


def _training_section(m: dict[str, Any], fig_dir: Path, run_dir: Path) -> list[str]:
    """Loss curves of pretraining and finetuning (figure) and their summaries."""
    lines: list[str] = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, phase in zip(axes, ("pretrain", "finetune"), strict=True):
        rows = _metrics(run_dir, phase)
        train_rows = [r for r in rows if "loss" in r]
        val_rows = [r for r in rows if "val_loss" in r]
        if not train_rows:
            _empty(ax, f"no {phase}")
            continue
        ax.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], label="train")
        if val_rows:
            ax.plot([r["step"] for r in val_rows], [r["val_loss"] for r in val_rows], "o-", label="validation")
            he = [r for r in val_rows if "humaneval_loss" in r]
            if he:
                ax.plot([r["step"] for r in he], [r["humaneval_loss"] for r in he], "s--", label="HumanEval solutions")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.set_title(f"{phase.capitalize()} loss")
        ax.legend(fontsize=8)
    _save(fig, fig_dir / "loss_curves.png")
    lines += ["## Training", "", "![loss curves](figures/loss_curves.png)", ""]
    for phase in ("pretrain", "finetune"):
        t = m[phase]
        if t:
            val = t.get("final_val") or {}
            lines.append(
                f"- {phase}: {t['steps']} steps, {t['parameters']['total'] / 1e6:.1f}M parameters, loss "
                f"{t['first_loss']} -> {t['final_loss']}, validation {val.get('val_loss')}, HumanEval solution "
                f"loss {val.get('humaneval_loss')}, {t['tokens_per_s']:,} tokens/s, MFU {t.get('mfu')} "
                f"({_link(phase)})"
            )
    lines.append("")
    return lines


def _evaluation_section(m: dict[str, Any], fig_dir: Path, run_dir: Path) -> list[str]:
    """pass@1 base vs finetuned, the similar / not-similar split (the paper's Table 3), the contamination study."""
    lines: list[str] = []
    results = (m["eval"] or {}).get("results", {})
    fig, ax = plt.subplots(figsize=(7, 3.6))
    benchmarks = sorted({b for r in results.values() for b in r})
    if benchmarks:
        width = 0.38
        for k, label in enumerate(("base", "finetuned")):
            vals = [100 * _headline(results.get(label, {}).get(b, {})) for b in benchmarks]
            xs = [i + (k - 0.5) * width for i in range(len(benchmarks))]
            ax.bar(xs, vals, width, label=label)
            for x, v in zip(xs, vals, strict=True):
                ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(benchmarks)), benchmarks)
        ax.set_ylim(0, max(5.0, ax.get_ylim()[1] * 1.15))
        ax.set_ylabel("pass@1 (%)")
        ax.legend()
    else:
        _empty(ax, "no evaluation")
    ax.set_title("pass@1, base and finetuned")
    _save(fig, fig_dir / "pass_at_1.png")

    fig, ax = plt.subplots(figsize=(7, 3.6))
    groups = [(label, b) for label in ("base", "finetuned") for b in benchmarks if results.get(label, {}).get(b)]
    if groups:
        width = 0.38
        for k, part in enumerate(("similar", "not_similar")):
            vals, counts = [], []
            for label, b in groups:
                split = results[label][b].get("similarity_split") or {}
                entry = split.get(part) or {}
                vals.append(100 * (entry.get("pass@1") or 0.0))
                counts.append(entry.get("problems", 0))
            xs = [i + (k - 0.5) * width for i in range(len(groups))]
            ax.bar(xs, vals, width, label=part.replace("_", " ") + " to training")
            for x, v, n in zip(xs, vals, counts, strict=True):
                ax.text(x, v, f"{v:.1f}\n(n={n})", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(groups)), [f"{label}\n{b}" for label, b in groups], fontsize=8)
        ax.set_ylim(0, max(5.0, ax.get_ylim()[1] * 1.25))
        ax.set_ylabel("pass@1 (%)")
        ax.legend(fontsize=8)
    else:
        _empty(ax, "no evaluation")
    ax.set_title("pass@1 by similarity to the training data (the paper's Table 3)")
    _save(fig, fig_dir / "similarity_split.png")
    lines += [
        "## Evaluation",
        "",
        "![pass@1](figures/pass_at_1.png)",
        "",
        "![similarity split](figures/similarity_split.png)",
        "",
    ]
    if results:
        lines += [
            "| model | benchmark | metric | pass@1 | similar problems | not similar |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for label, per in results.items():
            for b, r in per.items():
                split = r.get("similarity_split") or {}
                for metric, values in r["pass_at_k"].items():
                    s, n = split.get("similar", {}), split.get("not_similar", {})
                    lines.append(
                        f"| {label} | {b} | {metric} | {100 * values.get('pass@1', 0):.1f}% | "
                        f"{_pct(s.get('pass@1'))} (n={s.get('problems', 0)}) | {_pct(n.get('pass@1'))} "
                        f"(n={n.get('problems', 0)}) |"
                    )
        lines += ["", *_table3(results)]
        study = _manifest(run_dir, "ablate_contamination")
        if study and study.get("table"):
            lines += ["", "`phi1 ablate --study contamination`: the run's pretrained model finetuned on all verified "
                      "exercises and on the pruned ones (the paper's comparison), "
                      "[manifest](ablate_contamination/manifest.json):", "", study["table"]]  # fmt: skip
        lines += ["", f"Source: {_link('eval')}; per-sample results under `eval/<model>/<benchmark>/`."]
        for note in (m["eval"] or {}).get("notes", []):
            lines.append(f"- note: {note}")
    lines.append("")
    return lines


def _teacher_and_time_section(m: dict[str, Any], fig_dir: Path) -> list[str]:
    """Teacher usage per stage, and the time each stage took (figure)."""
    lines: list[str] = []
    lines += [
        "## Teacher usage",
        "",
        "| stage | requests | cache hits | errors | prompt tokens | completion tokens | cost |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("annotations", "textbook", "exercises"):
        t = (m[name] or {}).get("teacher")
        if t:
            cost = f"${t['cost_usd']:.2f}" if t.get("cost_usd") is not None else "-"
            lines.append(
                f"| [{name}]({name}/manifest.json) | {t['requests']:,} | {t['cache_hits']:,} | {t['errors']} | "
                f"{t['prompt_tokens']:,} | {t['completion_tokens']:,} | {cost} |"
            )
    lines.append("")
    stage_times = {n: mm["timings"]["total_s"] for n, mm in m.items() if mm and "timings" in mm}
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if stage_times:
        ax.barh(list(stage_times)[::-1], list(stage_times.values())[::-1], color="tab:gray")
        ax.set_xlabel("seconds")
    else:
        _empty(ax, "no stage ran")
    ax.set_title("Time per stage")
    _save(fig, fig_dir / "stage_times.png")
    lines += ["## Time", "", "![stage times](figures/stage_times.png)", "", "| stage | seconds |", "| --- | --- |"]
    lines += [f"| [{n}]({n}/manifest.json) | {s:,.1f} |" for n, s in stage_times.items()]
    lines.append("")
    return lines


def _headline(entry: dict[str, Any]) -> float:
    metrics = entry.get("pass_at_k") or {}
    if not metrics:
        return 0.0
    last = list(metrics.values())[-1]
    return float(last.get("pass@1", 0.0))


def _precision_lines(m: dict) -> list[str]:
    """Which precision every stage that computed with a model used, and why (phi1.precision)."""
    rows = [(n, mm["precision"]) for n, mm in m.items() if mm and isinstance(mm.get("precision"), dict)]
    if not rows:
        return []
    lines = ["## Precision", "", "| stage | device | dtype | why |", "| --- | --- | --- | --- |"]
    for name, p in rows:
        lines.append(f"| [{name}]({name}/manifest.json) | {p.get('device')} | {p.get('dtype')} | {p.get('reason')} |")
    return [*lines, ""]


def _table3(results: dict) -> list[str]:
    """The paper's Table 3 on this run: pass@1 on problems whose unpruned training data had an AST match at
    each tau (and, beyond the paper, an execution twin), against the rest."""
    head = ["| model | benchmark | split | similar: problems | pass@1 | not similar: problems | pass@1 |",
            "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    lines = []
    for label, per in results.items():
        for b, r in per.items():
            split = r.get("similarity_split") or {}
            parts = [(f"tau >= {t}", v) for t, v in split.get("by_tau", {}).items()]
            if "execution_twins" in split:
                parts.append(("execution twin", split["execution_twins"]))
            for name, v in parts:
                s, n = v["similar"], v["not_similar"]
                lines.append(f"| {label} | {b} | {name} | {s['problems']} | {_pct(s['pass@1'])} | {n['problems']} | "
                             f"{_pct(n['pass@1'])} |")  # fmt: skip
    if not lines:
        return []
    return ["The paper's Table 3 on this run's data (similar = the training data *before* decontamination held a "
            "match):", "", *head, *lines]  # fmt: skip


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
