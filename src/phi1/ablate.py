"""`phi1 ablate`: the paper's Figure 2.1 and a study of repeated data, on the run's own data.

- figure: at one token budget, the same model trained on (a) the unfiltered corpus, (b) the curated corpus
  plus the synthetic textbook, (c) (b) then finetuned on the exercises; pass@1 per benchmark and the loss
  of HumanEval's canonical solutions (a signal that moves at small scale long before pass@1 does).
- epochs: at one token budget, unique data seen 1, 2, 4, 8, 16 times (fewer unique tokens, more passes);
  held-out loss against the number of passes, the single pass on fresh data as the reference.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from phi1.config import Config
from phi1.errors import Phi1Error
from phi1.progress import console
from phi1.rundir import Stage, open_step, read_shards, require_complete, save_text, stage_key
from phi1.tokens import read_token_index, write_token_index

VARIANTS = (
    ("unfiltered", "(a) unfiltered corpus"),
    ("textbook", "(b) curated + textbook"),
    ("exercises", "(c) (b) + exercises finetune"),
)


def _sub_run(run_dir: Path, folder: Path, pretrain_bin: np.ndarray | Path, with_finetune: bool) -> Path:
    """A run directory sharing the main run's tokenizer and validation sets, with its own pretraining tokens."""
    tokens = folder / "tokens"
    if folder.exists():
        shutil.rmtree(folder)
    tokens.mkdir(parents=True)
    shutil.copytree(run_dir / "tokenizer", folder / "tokenizer")
    index = read_token_index(run_dir / "tokens")
    if isinstance(pretrain_bin, Path):
        shutil.copy(pretrain_bin, tokens / "pretrain.bin")
        n = index["files"]["pretrain"]["tokens"]
    else:
        pretrain_bin.tofile(tokens / "pretrain.bin")
        n = int(pretrain_bin.size)
    files = {"pretrain": {"tokens": n, "documents": 0, "sequences": n // index["seq_len"]}}
    for name in ("pretrain_val", *(("finetune", "finetune_val") if with_finetune else ())):
        if name in index["files"]:
            shutil.copy(run_dir / "tokens" / f"{name}.bin", tokens / f"{name}.bin")
            mask = run_dir / "tokens" / f"{name}.mask.bin"
            if mask.exists():
                shutil.copy(mask, tokens / mask.name)
            files[name] = index["files"][name]
    write_token_index(tokens, {**index, "files": files})
    key = stage_key({"ablation": folder.name, "tokens": n}, [require_complete(run_dir, "tokens")["cache_key"]])
    Stage(folder, "tokens", key).mark_complete()
    return folder


def _corpus_tokens(run_dir: Path) -> np.ndarray:
    """The unfiltered corpus, tokenized with the run's tokenizer and packed like the curated data."""
    from phi1.tokenize import load_tokenizer

    tok = load_tokenizer(run_dir / "tokenizer")
    index = read_token_index(run_dir / "tokens")
    rows = list(read_shards(sorted((run_dir / "corpus").glob("data-*.parquet")), ["id", "text"]))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))
    ids: list[int] = []
    for start in range(0, len(order), 256):
        batch = [rows[i]["text"] for i in order[start : start + 256]]
        for seq in tok(batch, add_special_tokens=False)["input_ids"]:
            ids.extend(seq)
            ids.append(tok.eos_token_id)
    return np.array(ids, dtype=index["dtype"])


def _pretraining_steps(steps: int, study: str, setting: str) -> int:
    """The steps a study of pretraining data trains each variant for. A base handed on as it is (`pretrain.max_steps
    0`) gives none: every variant would be the base itself, so the study is refused, naming what gives it steps."""
    if not steps:
        raise Phi1Error(
            f"phi1 ablate --study {study} compares pretraining data, and this run pretrains nothing "
            f"(pretrain.max_steps 0: the base as it is); set {setting} to the steps each variant pretrains"
        )
    return steps


def _variant_config(config: Config, steps: int, finetune_steps: int) -> Config:
    return config.model_copy(
        update={
            "pretrain": config.pretrain.model_copy(update={"max_steps": steps, "checkpoint_every": 10**9}),
            "finetune": config.finetune.model_copy(update={"max_steps": finetune_steps, "checkpoint_every": 10**9}),
        }
    )


def _evaluate(model_dir: Path, config: Config, out: Path, run_dir: Path, model: str) -> dict[str, float]:
    """pass@1 (greedy) of `model_dir` on the run's benchmarks, asked as the evaluate stage asks the run's `model`
    (base or finetuned: `phi1.evaluate.stage.ask_modes`)."""
    from phi1.evaluate.generate import Sampling
    from phi1.evaluate.run import Source, run_eval
    from phi1.evaluate.stage import ask_modes, benchmark_paths

    cfg = config.evaluate
    scores = {}
    sampling = Sampling(n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens)
    chat = ask_modes(run_dir, config)[model]
    for name, path in benchmark_paths(config):
        summary = run_eval(
            name,
            Source(model=model_dir),
            out / name.replace("+", "_plus"),
            problems=Path(path) if path else None,
            ks=[1],
            sampling=sampling,
            workers=cfg.workers,
            sandbox_mode=cfg.sandbox,
            timeout_s=cfg.timeout_s,
            batch_size=cfg.batch_size,
            bf16=cfg.bf16,
            chat=chat,
        )
        scores[f"{name} pass@1"] = list(summary["pass_at_k"].values())[-1]["pass@1"]
    return scores


def ablate_figure(run_dir: Path, config: Config, force: bool = False) -> dict[str, Any]:
    """The paper's Figure 2.1 on this run's data and model preset."""
    from phi1.train import train

    run_dir = Path(run_dir)
    steps = _pretraining_steps(config.ablate.pretrain_steps or config.pretrain.max_steps, "figure",
                               "ablate.pretrain_steps")  # fmt: skip
    ft_steps = config.ablate.finetune_steps or config.finetune.max_steps
    stage = open_step(run_dir, "ablate", config)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(config.ablate, {}, force=True)
    cfg = _variant_config(config, steps, ft_steps)
    results: dict[str, dict[str, Any]] = {}
    console.rule("[bold]ablation (a): the unfiltered corpus")
    a = _sub_run(run_dir, stage.path / "unfiltered", _corpus_tokens(run_dir), with_finetune=False)
    ma = train(a, cfg, "pretrain")
    results["unfiltered"] = {
        "humaneval_loss": (ma.get("final_val") or {}).get("humaneval_loss"),
        **_evaluate(a / "pretrain" / "final", config, a / "eval", run_dir, "base"),
    }
    console.rule("[bold]ablation (b): curated code + textbook, then (c): + exercises")
    b = _sub_run(run_dir, stage.path / "textbook", run_dir / "tokens" / "pretrain.bin", with_finetune=True)
    mb = train(b, cfg, "pretrain")
    results["textbook"] = {
        "humaneval_loss": (mb.get("final_val") or {}).get("humaneval_loss"),
        **_evaluate(b / "pretrain" / "final", config, b / "eval-base", run_dir, "base"),
    }
    mc = train(b, cfg, "finetune")
    results["exercises"] = {
        "humaneval_loss": (mc.get("final_val") or {}).get("humaneval_loss"),
        **_evaluate(b / "finetune" / "final", config, b / "eval-finetuned", run_dir, "finetuned"),
    }
    tokens_budget = steps * cfg.pretrain.batch_size * read_token_index(run_dir / "tokens")["seq_len"]
    figure = _plot_figure(results, stage.path / "figure_2_1.png", tokens_budget)
    table = [
        "| variant | " + " | ".join(k for k in results["unfiltered"]) + " |",
        "| --- |" + " --- |" * len(results["unfiltered"]),
    ]
    for key, label in VARIANTS:
        table.append(f"| {label} | " + " | ".join(_fmt(results[key].get(k)) for k in results["unfiltered"]) + " |")
    save_text(stage.path / "table.md", "\n".join(table) + "\n")
    return stage.finish(
        results=results,
        token_budget=tokens_budget,
        pretrain_steps=steps,
        finetune_steps=ft_steps,
        figure=str(figure),
        table="\n".join(table),
    )


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _plot_figure(results: dict[str, dict[str, Any]], path: Path, budget: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [k for k in results["unfiltered"] if k.endswith("pass@1")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [max(1, len(metrics)), 1]})
    width = 0.26
    colors = ("tab:gray", "tab:orange", "tab:green")
    for k, ((key, label), color) in enumerate(zip(VARIANTS, colors, strict=True)):
        vals = [100 * (results[key].get(m) or 0.0) for m in metrics]
        xs = [i + (k - 1) * width for i in range(len(metrics))]
        axes[0].bar(xs, vals, width, label=label, color=color)
        for x, v in zip(xs, vals, strict=True):
            axes[0].text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
        loss = results[key].get("humaneval_loss")
        axes[1].bar([k], [loss or 0.0], color=color)
        axes[1].text(k, loss or 0.0, _fmt(loss), ha="center", va="bottom", fontsize=8)
    axes[0].set_xticks(range(len(metrics)), [m.replace(" pass@1", "") for m in metrics])
    axes[0].set_ylim(0, max(5.0, axes[0].get_ylim()[1] * 1.15))
    axes[0].set_ylabel("pass@1 (%)")
    axes[0].set_title(f"pass@1 at {budget / 1e6:.1f}M pretraining tokens")
    axes[0].legend(fontsize=8)
    axes[1].set_xticks(range(3), ["(a)", "(b)", "(c)"])
    axes[1].set_ylabel("nats/token")
    axes[1].set_title("HumanEval solution loss\n(lower is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ablate_epochs(run_dir: Path, config: Config, force: bool = False) -> dict[str, Any]:
    """Held-out loss against the number of passes over unique data, at one token budget."""
    from phi1.train import train

    run_dir = Path(run_dir)
    steps = _pretraining_steps(config.ablate.epochs_steps or config.pretrain.max_steps, "epochs", "ablate.epochs_steps")
    stage = open_step(run_dir, "ablate_epochs", config)
    index = read_token_index(run_dir / "tokens")
    seq, batch = index["seq_len"], config.pretrain.batch_size
    stream = np.fromfile(run_dir / "tokens" / "pretrain.bin", dtype=index["dtype"])
    notes = []
    if steps * batch * seq > stream.size:
        steps = max(1, stream.size // (batch * seq))
        notes.append(
            f"the run has {stream.size:,} pretraining tokens: the budget is cut to {steps} steps so that one "
            "pass is all fresh data"
        )
    budget = steps * batch * seq
    passes = sorted(set(config.ablate.epochs_passes))
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(config.ablate, {}, force=True)
    cfg = _variant_config(config, steps, 1)
    cfg = cfg.model_copy(
        update={"pretrain": cfg.pretrain.model_copy(update={"humaneval_loss": False, "eval_every": steps})}
    )
    rows = []
    for p in passes:
        unique = max(seq * batch, (budget // p) // seq * seq)
        console.rule(f"[bold]epochs study: {p} pass(es) over {unique:,} unique tokens")
        sub = _sub_run(run_dir, stage.path / f"passes-{p:02d}", stream[:unique].copy(), with_finetune=False)
        m = train(sub, cfg, "pretrain")
        rows.append(
            {
                "passes": p,
                "unique_tokens": unique,
                "val_loss": (m.get("final_val") or {}).get("val_loss"),
                "train_loss": m.get("final_loss"),
            }
        )
        shutil.rmtree(sub / "pretrain" / "final", ignore_errors=True)  # the weights are not needed afterwards
    figure = _plot_epochs(rows, stage.path / "epochs.png", budget)
    return stage.finish(results=rows, token_budget=budget, steps=steps, notes=notes, figure=str(figure))


def _plot_epochs(rows: list[dict[str, Any]], path: Path, budget: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    xs = [r["passes"] for r in rows]
    ys = [r["val_loss"] for r in rows]
    ax.plot(xs, ys, "o-", label="held-out loss")
    fresh = next((r["val_loss"] for r in rows if r["passes"] == 1), None)
    if fresh is not None:
        ax.axhline(fresh, color="gray", linestyle="--", label="fresh data (1 pass)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("passes over the unique data (same token budget)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(f"Repeated data at {budget / 1e6:.1f}M tokens")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def check_ready(run_dir: Path) -> None:
    for name in ("corpus", "tokens"):
        try:
            require_complete(run_dir, name)
        except Phi1Error:
            raise Phi1Error(f"{run_dir}: run `phi1 run` (at least through tokenize) before `phi1 ablate`") from None


# -- contamination: the paper's Table 3 experiment ------------------------------------------------------


def ablate_contamination(run_dir: Path, config: Config, force: bool = False) -> dict[str, Any]:
    """The paper's section 5 on this run: the run's pretrained model finetuned on all verified exercises
    (before dedup and decontamination) and on the pruned ones (what clean kept), both evaluated, pass@1 split
    by similarity of each problem to the *unpruned* exercises: per AST tau, and by execution twins."""
    from phi1.evaluate.stage import similarity_split
    from phi1.train import train

    run_dir = Path(run_dir)
    ft_steps = config.ablate.finetune_steps or config.finetune.max_steps
    stage = open_step(run_dir, "ablate_contamination", config)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(config.ablate, {}, force=True)
    cfg = _variant_config(config, config.pretrain.max_steps, ft_steps)
    shards = {name: sorted((run_dir / name).glob("data-*.parquet")) for name in ("exercises", "clean")}
    exercises = {
        "all": list(read_shards(shards["exercises"])),
        "pruned": [r for r in read_shards(shards["clean"]) if r["kind"] == "exercise"],
    }
    results: dict[str, Any] = {}
    for variant, docs in exercises.items():
        console.rule(f"[bold]contamination study: finetuned on {variant} exercises ({len(docs)})")
        sub = _finetune_run(run_dir, stage.path / variant, docs, config)
        m = train(sub, cfg, "finetune")
        scores = _evaluate(sub / "finetune" / "final", config, sub / "eval", run_dir, "finetuned")
        splits = {name: similarity_split(run_dir, sub / "eval" / name.replace("+", "_plus") / "results.jsonl")
                  for name in config.evaluate.benchmarks}  # fmt: skip
        results[variant] = {"exercises": len(docs), "final_val": m.get("final_val"), **scores, "splits": splits}
        shutil.rmtree(sub / "finetune" / "checkpoints", ignore_errors=True)
    table = _contamination_table(results)
    save_text(stage.path / "table.md", table + "\n")
    return stage.finish(results=results, finetune_steps=ft_steps, table=table)


def _finetune_run(run_dir: Path, folder: Path, docs: list[dict[str, Any]], config: Config) -> Path:
    """A run directory holding the main run's tokenizer, pretrained model and held-out exercises, with `docs`
    (less those held out) as its finetuning set."""
    from phi1.tokenize import encode_to, held_out_ids, load_tokenizer

    if folder.exists():
        shutil.rmtree(folder)
    (folder / "tokens").mkdir(parents=True)
    shutil.copytree(run_dir / "tokenizer", folder / "tokenizer")
    shutil.copytree(run_dir / "pretrain" / "final", folder / "pretrain" / "final")
    shutil.copy(run_dir / "pretrain" / "manifest.json", folder / "pretrain" / "manifest.json")
    index = read_token_index(run_dir / "tokens")
    files: dict[str, Any] = {}
    if "finetune_val" in index["files"]:  # one held-out set for both variants: the main run's
        for suffix in (".bin", ".mask.bin", ".docs.bin"):
            if (run_dir / "tokens" / f"finetune_val{suffix}").exists():
                shutil.copy(run_dir / "tokens" / f"finetune_val{suffix}", folder / "tokens" / f"finetune_val{suffix}")
        files["finetune_val"] = index["files"]["finetune_val"]
    held_out = held_out_ids(run_dir, {"exercise"}, config.tokenize.val_fraction, config.seed)
    train_docs = sorted((d for d in docs if d.get("solution") and d["id"] not in held_out), key=lambda d: d["id"])
    tok = load_tokenizer(run_dir / "tokenizer")
    fmt = index.get("exercise_format", "completion")  # as the main run's exercises were written
    n_tokens = encode_to(folder / "tokens" / "finetune.bin", tok, train_docs, np.dtype(index["dtype"]), fmt,
                          folder.name)  # fmt: skip
    files["finetune"] = {"tokens": n_tokens, "documents": len(train_docs), "sequences": n_tokens // index["seq_len"]}
    write_token_index(folder / "tokens", {**index, "files": files})
    key = stage_key({"contamination": folder.name, "tokens": n_tokens}, [index.get("seq_len", 0)])
    Stage(folder, "tokens", key).mark_complete()
    return folder


def _contamination_table(results: dict[str, Any]) -> str:
    lines = ["| finetuned on | benchmark | problems similar by | similar: n | pass@1 | not similar: n | pass@1 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for variant, r in results.items():
        for bench, split in r["splits"].items():
            if not split:
                continue
            parts = [(f"tau >= {t}", v) for t, v in split.get("by_tau", {}).items()]
            parts.append(("execution twin", split.get("execution_twins")))
            for name, v in parts:
                if not v:
                    continue
                s, n = v["similar"], v["not_similar"]
                lines.append(f"| {variant} ({r['exercises']}) | {bench} | {name} | {s['problems']} | "
                             f"{_fmt(s['pass@1'])} | {n['problems']} | {_fmt(n['pass@1'])} |")  # fmt: skip
    return "\n".join(lines)
