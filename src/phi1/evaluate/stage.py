"""The evaluation stage of a run: the pretrained (base) and finetuned models on each configured benchmark,
with pass@1 split by similarity to the training data (the paper's Table 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phi1.config import Config
from phi1.errors import Phi1Error
from phi1.evaluate import flips
from phi1.evaluate.generate import Sampling
from phi1.evaluate.perturb import parse_categories
from phi1.evaluate.run import Source, run_eval
from phi1.precision import resolve
from phi1.records import write_json
from phi1.rundir import open_step
from phi1.tokens import read_token_index

MODELS = (("base", "pretrain"), ("finetuned", "finetune"))


def benchmark_paths(config: Config) -> list[tuple[str, str | None]]:
    """(benchmark, the user's file or None for phi1's shipped copy); a configured file that is missing
    stops the stage before any generation."""
    cfg = config.evaluate
    fields = {"humaneval": None, "mbpp": "mbpp_path", "humaneval+": "humaneval_plus_path"}
    chosen = []
    for name in cfg.benchmarks:
        field = fields[name]
        path = getattr(cfg, field) if field else None
        if path is not None and not Path(path).exists():
            raise Phi1Error(f"evaluate.{field}: {path}: no such file")
        chosen.append((name, path))
    return chosen


def similarity_split(run_dir: Path, results_path: Path) -> dict[str, Any] | None:
    """pass@1 over the problems similar / not similar to the training data, from clean's similarity table:
    by clean's own rule (AST tau at the pruning threshold, or an execution twin), and for the paper's Table 3,
    by each tau alone and by execution twins alone."""
    rows = flips.similarity_rows(run_dir)
    if rows is None:
        return None
    per_task: dict[str, list[bool]] = {}
    for line in results_path.read_text().splitlines():
        r = json.loads(line)
        per_task.setdefault(r["task_id"], []).append(bool(r["passed"]))

    def split(is_similar: Any) -> dict[str, Any]:
        out = {}
        for label, flag in (("similar", True), ("not_similar", False)):
            tasks = [t for t in per_task if t in rows and bool(is_similar(rows[t])) is flag]
            rate = sum(sum(per_task[t]) / len(per_task[t]) for t in tasks) / len(tasks) if tasks else None
            out[label] = {"problems": len(tasks), "pass@1": round(rate, 4) if rate is not None else None}
        return out

    result = split(lambda r: r["similar_to_training"])
    columns = sorted((c for c in next(iter(rows.values()), {}) if c.startswith("similar_at_tau_")), reverse=True)
    result["by_tau"] = {c.removeprefix("similar_at_tau_").replace("_", "."): split(lambda r, c=c: r[c])
                        for c in columns}  # fmt: skip
    result["execution_twins"] = split(lambda r: r.get("execution_twins", 0) > 0)
    return result


def ask_modes(run_dir: Path, config: Config) -> dict[str, str]:
    """How each model is asked (a `--chat` mode): the finetuned model as it was trained (the format its exercises
    were written in, tokens/index.json; phi1.prompt_format), the base as evaluate.chat says (auto: an instruct model
    in its chat template, its best mode)."""
    try:
        trained = read_token_index(run_dir / "tokens").get("exercise_format", "completion")
    except Phi1Error:
        trained = "completion"
    return {"base": config.evaluate.chat, "finetuned": "on" if trained == "chat" else "off"}


def evaluate_run(run_dir: Path, config: Config, force: bool = False) -> dict[str, Any]:
    cfg = config.evaluate
    stage = open_step(run_dir, "eval", config)  # the models' keys, and clean's (the similarity split)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, {}, force=force)
    chosen = benchmark_paths(config)
    perturb = parse_categories(cfg.perturb) if cfg.perturb else []
    sampling = Sampling(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens)
    results: dict[str, dict[str, Any]] = {}
    modes = ask_modes(run_dir, config)
    for label, phase in MODELS:
        model_dir = run_dir / phase / "final"
        for name, path in chosen:
            out = stage.path / label / name.replace("+", "_plus")
            summary_path = out / "summary.json"
            if summary_path.exists() and not force:  # finished before an interruption
                summary = json.loads(summary_path.read_text())
            else:
                with stage.timed(f"{label}_{name}_s"):
                    summary = run_eval(
                        name,
                        Source(model=model_dir),
                        out,
                        problems=Path(path) if path else None,
                        ks=cfg.ks,
                        sampling=sampling,
                        workers=cfg.workers,
                        sandbox_mode=cfg.sandbox,
                        timeout_s=cfg.timeout_s,
                        batch_size=cfg.batch_size,
                        references=stage.path / f"{name.replace('+', '_plus')}_references.json",  # base + finetuned
                        perturb=perturb,
                        variants=cfg.variants,
                        perturb_seed=cfg.perturb_seed,
                        chat=modes[label],
                        bf16=cfg.bf16,
                    )
            split = similarity_split(run_dir, out / "results.jsonl")
            results.setdefault(label, {})[name] = {
                "pass_at_k": summary["pass_at_k"],
                "status_counts": summary["status_counts"],
                "chat": summary.get("chat"),
                "similarity_split": split,
                **({"robustness": summary["robustness"]} if "robustness" in summary else {}),
                "summary": str(summary_path.relative_to(run_dir)),
            }
    with stage.timed("comparison_s"):
        comparison = compare_models(run_dir, config, stage.path, [name for name, _ in chosen])
    write_json(stage.path / "comparison.json", comparison)
    return stage.finish(results=results, comparison=comparison, precision=resolve(cfg.bf16).as_dict())


def compare_models(run_dir: Path, config: Config, eval_dir: Path, names: list[str]) -> dict[str, Any]:
    """Per benchmark, base vs finetuned on the same problems (`phi1.evaluate.flips`): the flips each way,
    McNemar's exact p, and each problem that flipped to pass beside its nearest finetuning exercise."""
    twins = {t: r.get("execution_twins", 0) for t, r in (flips.similarity_rows(run_dir) or {}).items()}
    exercises: list[dict[str, Any]] | None = None
    out: dict[str, Any] = {}
    for name in names:
        folder = name.replace("+", "_plus")
        paths = [eval_dir / label / folder / "results.jsonl" for label, _ in MODELS]
        if not all(p.exists() for p in paths):
            continue
        c = flips.compare(flips.passed(paths[0]), flips.passed(paths[1]))
        if c["to_pass"]:
            exercises = flips.read_exercises(run_dir / "clean") if exercises is None else exercises
            benchmark = "mbpp" if name == "mbpp" else "humaneval"  # HumanEval+ asks HumanEval's problems
            c["nearest_exercise"] = flips.nearest_exercises(
                c["to_pass"], benchmark, exercises, config.clean.encoder or config.curate.encoder,
                config.clean.ngram_n, config.clean.ast_min_nodes, twins,
            )  # fmt: skip
        out[name] = c
    return out
