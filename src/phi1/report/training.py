"""The report's training sections: loss curves and summaries, teacher usage and stage times, precision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from phi1 import manifests
from phi1.report.common import empty, link, metrics_rows, save, table


def training_section(m: dict[str, Any], fig_dir: Path, run_dir: Path) -> list[str]:
    """Loss curves of pretraining and finetuning (figure) and their summaries."""
    lines: list[str] = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, phase in zip(axes, ("pretrain", "finetune"), strict=True):
        rows = metrics_rows(run_dir, phase)
        train_rows = [r for r in rows if "loss" in r]
        val_rows = [r for r in rows if "val_loss" in r]
        if not train_rows:
            empty(ax, f"no {phase}")
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
    save(fig, fig_dir / "loss_curves.png")
    lines += ["## Training", "", "![loss curves](figures/loss_curves.png)", ""]
    rows = []
    for phase in ("pretrain", "finetune"):
        t = m[phase]
        if t:
            val = t.get("final_val") or {}
            loss = f"{t['first_loss']} -> {t['final_loss']}" if t.get("first_loss") is not None else (
                "none: the base as it is" if t.get("base") else None)  # fmt: skip
            held_out = val.get("val_loss")
            merged = t.get("merge_base") or {}
            if merged.get("val_loss") is not None:  # the model evaluated is this average, not the finetune alone
                held_out = f"{held_out}; averaged with its start ({merged['weight']:g} of it): {merged['val_loss']}"
            params = t["parameters"]
            size = f"{params['total'] / 1e6:.1f}M"
            if params.get("trained") is not None and 0 < params["trained"] < params["total"]:
                size += f" ({params['trained'] / 1e6:.1f}M trained)"  # LoRA's adapters, or frozen layers
            rows.append([phase, t["steps"], size, loss, held_out,
                         val.get("humaneval_loss"),
                         f"{t['tokens_per_s']:,}", manifests.mfu_text(t), link(phase)])  # fmt: skip
    if rows:
        header = ["phase", "steps", "parameters", "loss", "validation loss", "HumanEval solution loss", "tokens/s",
                  "MFU", "manifest"]  # fmt: skip
        lines += table(header, rows)
    return lines


def teacher_and_time_section(m: dict[str, Any], fig_dir: Path) -> list[str]:
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
        empty(ax, "no stage ran")
    ax.set_title("Time per stage")
    save(fig, fig_dir / "stage_times.png")
    lines += ["## Time", "", "![stage times](figures/stage_times.png)", "", "| stage | seconds |", "| --- | --- |"]
    lines += [f"| [{n}]({n}/manifest.json) | {s:,.1f} |" for n, s in stage_times.items()]
    lines.append("")
    return lines


def precision_lines(m: dict) -> list[str]:
    """Which precision every stage that computed with a model used, and why (phi1.precision)."""
    rows = [(n, mm["precision"]) for n, mm in m.items() if mm and isinstance(mm.get("precision"), dict)]
    if not rows:
        return []
    lines = ["## Precision", "", "| stage | device | dtype | why |", "| --- | --- | --- | --- |"]
    for name, p in rows:
        lines.append(f"| [{name}]({name}/manifest.json) | {p.get('device')} | {p.get('dtype')} | {p.get('reason')} |")
    return [*lines, ""]
