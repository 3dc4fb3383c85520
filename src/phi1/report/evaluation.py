"""The report's evaluation section: pass@1 base vs finetuned, the split by similarity to the training data
(the paper's Table 3), the contamination study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from phi1.report.common import empty, link, manifest, pct, save, table, untrusted


def evaluation_section(m: dict[str, Any], fig_dir: Path, run_dir: Path) -> list[str]:
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
        empty(ax, "no evaluation")
    ax.set_title("pass@1, base and finetuned")
    save(fig, fig_dir / "pass_at_1.png")

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
        empty(ax, "no evaluation")
    ax.set_title("pass@1 by similarity to the training data (the paper's Table 3)")
    save(fig, fig_dir / "similarity_split.png")
    lines += [
        "## Evaluation",
        "",
        *jump_lines(m),
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
                        f"{pct(s.get('pass@1'))} (n={s.get('problems', 0)}) | {pct(n.get('pass@1'))} "
                        f"(n={n.get('problems', 0)}) |"
                    )
        lines += ["", *_table3(results)]
        study = manifest(run_dir, "ablate_contamination")
        if study and study.get("table"):
            lines += ["", "`phi1 ablate --study contamination`: the run's pretrained model finetuned on all verified "
                      "exercises and on the pruned ones (the paper's comparison), "
                      "[manifest](ablate_contamination/manifest.json):", "", study["table"]]  # fmt: skip
        lines += ["", f"Source: {link('eval')}; per-sample results under `eval/<model>/<benchmark>/`."]
        for note in (m["eval"] or {}).get("notes", []):
            lines.append(f"- note: {note}")
    lines.append("")
    return lines


def _headline(entry: dict[str, Any]) -> float:
    metrics = entry.get("pass_at_k") or {}
    if not metrics:
        return 0.0
    last = list(metrics.values())[-1]
    return float(last.get("pass@1", 0.0))


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
                lines.append(f"| {label} | {b} | {name} | {s['problems']} | {pct(s['pass@1'])} | {n['problems']} | "
                             f"{pct(n['pass@1'])} |")  # fmt: skip
    if not lines:
        return []
    return ["The paper's Table 3 on this run's data (similar = the training data *before* decontamination held a "
            "match):", "", *head, *lines]  # fmt: skip


def _decoding_line(ev: dict[str, Any]) -> list[str]:
    """How both models decoded: in bf16, greedy answers depend on how many rows decode at once."""
    dtype = (ev.get("precision") or {}).get("dtype")
    rows = (ev.get("config") or {}).get("batch_size")
    if dtype is None or rows is None:
        return []
    line = f"Both models decoded in {dtype}, {rows} rows at once."
    if dtype == "bf16":
        line += (" In bf16 how rows are batched changes some greedy answers; `evaluate.bf16: off` decodes in fp32, "
                 "where it does not (about half as fast).")  # fmt: skip
    return [line, ""]


def jump_lines(m: dict[str, Any]) -> list[str]:
    """The paper's central claim on this run: per benchmark, base vs finetuned on the same problems (each asked
    in its own mode), the problems that flipped each way, McNemar's exact p, and each problem that flipped to
    pass beside its nearest finetuning exercise with that pair's detector scores."""
    ev = m.get("eval") or {}
    comparison, results = ev.get("comparison") or {}, ev.get("results") or {}
    pretrained = m.get("pretrain") or {}
    base = pretrained.get("base")
    merged = (m.get("finetune") or {}).get("merge_base")
    lines: list[str] = []
    for name, c in comparison.items():
        modes = {label: (results.get(label, {}).get(name) or {}).get("chat") for label in ("base", "finetuned")}
        n = c["problems"]
        lines += [f"### Base vs finetuned: {name} (greedy, {n} problems)", ""]
        base_name = "base (pretrained here)"
        if base:
            steps = pretrained.get("steps") or 0
            continued = f", its pretraining continued here for {steps} steps" if steps else ""
            base_name = f"base ({untrusted(Path(base).name)}{continued})"
        tuned_name = "finetuned on the run's clean exercises"
        if merged:
            tuned_name += f", averaged with its start ({merged['weight']:g} of it: `finetune.merge_base`)"
        lines += table(["model", "asked", "pass@1", "solved"], [
            [base_name, "chat" if modes["base"] else "completion", pct(c["base_passed"] / max(n, 1)),
             f"{c['base_passed']}/{n}"],
            [tuned_name, "chat" if modes["finetuned"] else "completion",
             pct(c["finetuned_passed"] / max(n, 1)), f"{c['finetuned_passed']}/{n}"],
        ])  # fmt: skip
        lines += [
            *_decoding_line(ev),
            f"Flipped to pass: {len(c['to_pass'])} ({', '.join(c['to_pass']) or 'none'}); to fail: "
            f"{len(c['to_fail'])} ({', '.join(c['to_fail']) or 'none'}). McNemar's exact p = {c['mcnemar_p']:.4g} "
            f"({'below' if c['mcnemar_p'] < 0.05 else 'not below'} 0.05).",
            "",
        ]
        near = c.get("nearest_exercise") or {}
        if near:
            grams = next((k for k in next(iter(near.values())) if k.startswith("shared_")), "shared_13grams")
            lines += ["Each problem that flipped to pass, beside the finetuning exercise nearest to it (clean's "
                      "detectors on that pair; clean removes an exercise at cosine >= its embedding threshold, "
                      "AST tau >= its threshold, any shared n-gram, or an execution twin):", ""]  # fmt: skip
            rows = [[t, f"{untrusted(v['exercise_id'], 40)}: {untrusted(v['exercise_prompt'], 120)}", v["cosine"],
                     v["ast_tau"], v[grams], v["execution_twins"]] for t, v in near.items()]  # fmt: skip
            lines += table(["problem", "nearest exercise", "cosine", "AST tau", grams.replace("_", " "),
                            "execution twins (all training data)"], rows)  # fmt: skip
    if comparison:
        lines += [f"Source: {link('eval')}, `eval/comparison.json`.", ""]
    return lines
