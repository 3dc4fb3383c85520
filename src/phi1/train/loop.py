"""`phi1 train pretrain|finetune`: one training loop for one process, DDP or FSDP2 under torchrun.

The recipe of the paper in the presets: AdamW, linear warmup then linear decay, dropout 0.1, bf16
autocast, gradient clipping. The data order is a seeded permutation indexed by the optimizer step, so
that a run resumed from a checkpoint (weights, optimizer, scheduler, RNG states) sees exactly the batches
and produces exactly the losses of an uninterrupted one. Read top to bottom: `train` opens the stage,
`_train` builds the model and runs the steps, `_step` is one optimizer step. The pieces live beside it:
`build` (the model), `distributed` (ranks, parallelism, optimizer), `checkpoint` (the format), `metrics`,
`validate`, `batches`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from phi1.config import Config, TrainConfig
from phi1.errors import Phi1Error
from phi1.model import count_parameters, flops_per_token
from phi1.precision import resolve
from phi1.progress import progress_bar
from phi1.rundir import Stage, open_step
from phi1.tokenize import load_tokenizer
from phi1.tokens import TokenShards, read_token_index
from phi1.train import build, checkpoint, distributed, lora, metrics, validate
from phi1.train.batches import Batches
from phi1.train.collate import Data, PackedDocuments, collate, packed, targets
from phi1.train.distributed import Dist
from phi1.train.kernels import CausalLMLoss, Kernels
from phi1.train.merge_base import merge_with_start

__all__ = ["Batches", "targets", "train"]


def _phase_config(config: Config, phase: str) -> TrainConfig:
    if phase not in ("pretrain", "finetune"):
        raise Phi1Error(f"unknown training phase {phase!r}: pretrain or finetune")
    return config.pretrain if phase == "pretrain" else config.finetune


def train(run_dir: Path, config: Config, phase: str, resume: bool = False, force: bool = False) -> dict[str, Any]:
    run_dir = Path(run_dir)
    cfg = _phase_config(config, phase)
    if cfg.max_steps == 0 and (phase != "pretrain" or config.model.base is None):
        raise Phi1Error(f"{phase}.max_steps: 0 skips the pretraining of a model.base only; train from scratch in steps")
    # The key holds what decides the trained model (see TrainConfig.EXECUTION_ONLY) and the inputs' keys.
    stage = open_step(run_dir, phase, config)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    dist = Dist(cfg.device)
    if cfg.max_steps == 0:
        try:
            return _base_as_is(config, cfg, stage, dist, force)
        finally:
            dist.close()
    try:
        # Settings that cannot run are refused before the stage's folder is touched.
        accum, kernels = distributed.grad_accumulation(cfg, dist, phase), build.choose_kernels(cfg, dist)
        build.check_frozen(run_dir, cfg)
        start_from = _open_stage(stage, cfg, dist, resume, force)
        return _train(run_dir, config, cfg, phase, stage, dist, start_from, accum, kernels)
    finally:
        dist.close()


def _open_stage(stage: Stage, cfg: TrainConfig, dist: Dist, resume: bool, force: bool) -> Path | None:
    """Begin the stage's folder; the checkpoint to resume from, if any. Checkpoints are deleted only with
    --force: a run of the same settings needs --resume (or --force), changed settings stop with a list of them."""
    m = stage.manifest()
    same = m is not None and m.get("cache_key") == stage.key
    existing = checkpoint.latest(stage.path / "checkpoints") if same and not force else None
    if existing is not None and not resume:
        raise Phi1Error(
            f"{stage.path}: an unfinished run has checkpoints (last: {existing.name}); pass --resume "
            "to continue it or --force to start over"
        )
    if not same and not force and m is not None and stage.holds_checkpoints() and stage.settings_changed():
        stage.begin(cfg, {})  # raises on every rank alike: the error names the changed settings
    if dist.main:
        stage.begin(cfg, {}, force=force)
    dist.barrier()
    return existing


def _base_as_is(config: Config, cfg: TrainConfig, stage: Stage, dist: Dist, force: bool) -> dict[str, Any]:
    """`pretrain.max_steps: 0`: the base model is handed on as it is. Its files are linked into `final` (copied
    where links cannot be made); no step is taken, so nothing is loaded, validated or saved again."""
    from transformers import AutoConfig

    from phi1.base_model import resolve

    source = resolve(config.model.base or "")
    final = stage.path / checkpoint.FINAL
    if dist.main:
        stage.begin(cfg, {}, force=force)
        checkpoint.link_tree(source, final)
    dist.barrier()
    counts = count_parameters(AutoConfig.from_pretrained(final, local_files_only=True))
    summary = {"steps": 0, "base": str(config.model.base), "parameters": {**counts, "trained": 0},
               "checkpoint": str(final), **metrics.summary(stage.path / "metrics.jsonl")}  # fmt: skip
    return stage.finish(**summary) if dist.main else summary


@dataclass
class _Built:
    """What a phase trains with. Built in one order (weights seeded first, then each rank's stream), so that
    the initial weights and the dropout masks are the same on every run."""

    data: Data
    val: Data | None
    tokenizer: Any
    raw: Any  # the LM itself: what checkpoints hold
    model: Any  # what the loop calls: the LM with its loss, replicated or sharded, maybe compiled
    optimizer: Any
    scheduler: Any
    precision: Any
    checkpointed: int
    start_step: int
    kernels: Kernels  # the loss path this model runs with
    adapters: Any  # LoRA: peft's wrapper of `raw`, which merges the adapters into saved checkpoints; else None


def _build(
    run_dir: Path, config: Config, cfg: TrainConfig, phase: str, dist: Dist, start_from: Path | None, kernels: Kernels
) -> _Built:
    seed = config.seed if cfg.seed is None else cfg.seed
    tokens = TokenShards(run_dir / "tokens", phase)
    val = validate.optional_shards(run_dir / "tokens", f"{phase}_val", tokens.seq_len)
    tokenizer = load_tokenizer(run_dir / "tokenizer")
    torch.manual_seed(seed)  # the same initial weights on every rank
    raw = build.build_model(run_dir, config, cfg, phase, tokenizer, tokens)
    packing = getattr(cfg, "packing", "paper")
    data: Data = packed(tokens, packing, tokenizer.pad_token_id)
    if val is not None:
        val = packed(val, packing, tokenizer.pad_token_id)
    if packing == "documents":
        validate.check_document_attention(raw)
    kernels = build.fused_or_plain(kernels, cfg, raw)
    build.freeze_layers(raw, getattr(cfg, "freeze_layers", 0))
    checkpointed = build.checkpoint_layers(raw, cfg.activation_checkpointing)
    adapters = lora.add_adapters(raw, cfg, dist.world)  # LoRA: in place; None for a full finetune
    precision = resolve(cfg.bf16, str(dist.device))
    loss = CausalLMLoss(raw, kernels, precision.autocast, labelled_only=build.head_at_labels(cfg, dist, raw))
    model, optimizer, scheduler = distributed.parallelize(loss, cfg, dist)
    start_step, rng = (0, None)
    if start_from:
        start_step, rng = checkpoint.load(start_from, raw, optimizer, scheduler, dist, adapters)
    # Dropout differs by rank; a resumed run continues each rank's own random stream.
    distributed.seed_ranks(seed, dist, start_step, rng)
    return _Built(data, val, tokenizer, raw, model, optimizer, scheduler, precision, checkpointed, start_step, kernels,
                  adapters)  # fmt: skip


def _train(
    run_dir: Path,
    config: Config,
    cfg: TrainConfig,
    phase: str,
    stage: Stage,
    dist: Dist,
    start_from: Path | None,
    accum: int,
    kernels: Kernels,
) -> dict[str, Any]:
    b = _build(run_dir, config, cfg, phase, dist, start_from, kernels)
    data, raw, model, scheduler, start_step = b.data, b.raw, b.model, b.scheduler, b.start_step
    metrics_path = stage.path / "metrics.jsonl"
    if dist.main:
        metrics.truncate(metrics_path, start_step)
    counts = count_parameters(raw.config)
    fpt = flops_per_token(raw.config, data.seq_len, counts["non_embedding"], getattr(cfg, "freeze_layers", 0))
    peak = distributed.peak_flops(dist.device, cfg.peak_tflops)
    batches = Batches(data, cfg.batch_size, config.seed if cfg.seed is None else cfg.seed)
    solution_only = cfg.loss_on == "solution"
    fmt = read_token_index(run_dir / "tokens").get("exercise_format", "completion")
    humaneval = validate.humaneval_set(b.tokenizer, data.seq_len, fmt) if cfg.humaneval_loss else None
    writer = metrics.tensorboard(stage.path / "tensorboard") if dist.main else None
    tokens_per_step = cfg.batch_size * (data.seq_len - 1)
    best = checkpoint.best_so_far(metrics_path, start_step) if cfg.keep_best else None

    def run_validation(step: int) -> None:
        nonlocal best
        ev = validate.evaluate(model, b.val, humaneval, cfg, dist, solution_only)
        if dist.main and ev:
            metrics.log(metrics_path, writer, {"step": step, **ev})
        # Every rank computed the same validation loss, so every rank takes part in the same saves.
        if cfg.keep_best and step > 0 and "val_loss" in ev and (best is None or ev["val_loss"] < best[1]):
            best = (step, ev["val_loss"])
            state = {"step": step, "val_loss": ev["val_loss"]}
            checkpoint.save_weights(stage.path / checkpoint.BEST, raw, b.tokenizer, state, dist, b.adapters)

    if start_step == 0:  # the starting point of the validation curves
        run_validation(0)
    model.train()
    last_log, tokens_since, loss_val = time.perf_counter(), 0, float("nan")
    started, steps_done = time.perf_counter(), 0

    def bar_text() -> str:
        rate = steps_done * tokens_per_step / max(time.perf_counter() - started, 1e-9)
        return f"{rate:,.0f} tok/s  loss {loss_val:.3f}"

    with progress_bar(cfg.max_steps - start_step, f"{phase}", unit="step", extra=bar_text) as advance:
        for step in range(start_step, cfg.max_steps):
            t0 = time.perf_counter()
            loss_val, grad_norm = _step(model, b.optimizer, scheduler, batches, data, step, accum, cfg, dist)
            if not math.isfinite(loss_val):
                raise Phi1Error(f"{phase}: the loss is {loss_val} at step {step + 1}; lower the learning rate")
            dt = time.perf_counter() - t0
            tokens_since += tokens_per_step
            done = step + 1
            if dist.main and (done % cfg.log_every == 0 or done == cfg.max_steps or done == start_step + 1):
                tps = tokens_since / max(time.perf_counter() - last_log, 1e-9)
                row = metrics.step_row(done, loss_val, scheduler.get_last_lr()[0], float(grad_norm),
                                       done * tokens_per_step, tps, dt, tps * fpt / peak if peak else None,
                                       dist.device, batches.epochs_at(done))  # fmt: skip
                metrics.log(metrics_path, writer, row)
                last_log, tokens_since = time.perf_counter(), 0
            if done % cfg.eval_every == 0 or done == cfg.max_steps:
                run_validation(done)
            if (done % cfg.checkpoint_every == 0 or done in cfg.keep_steps) and done != cfg.max_steps:
                folder = stage.path / "checkpoints" / f"step-{done:07d}"
                checkpoint.save_training(folder, raw, b.tokenizer, b.optimizer, scheduler, done, dist, cfg, b.adapters)
            steps_done += 1
            advance(1)

    final = stage.path / checkpoint.FINAL
    checkpoint.save_final(final, raw, b.tokenizer, cfg, dist, stage.path / checkpoint.BEST if best else None,
                          b.adapters)  # fmt: skip
    merged = _average_with_start(run_dir, cfg, dist, b, final, solution_only)
    if writer is not None:
        writer.close()
    summary = _summary(b, cfg, dist, accum, b.kernels, counts, fpt, metrics_path, final, best)
    if phase == "finetune":
        summary["merge_base"] = merged
    elif config.model.base is not None:  # continued pretraining: the model it continued, as a handed-on base says
        summary["base"] = str(config.model.base)
    return stage.finish(**summary) if dist.main else summary


def _average_with_start(
    run_dir: Path, cfg: TrainConfig, dist: Dist, b: _Built, final: Path, solution_only: bool
) -> dict[str, Any] | None:
    """`finetune.merge_base` (WiSE-FT): `final` rewritten as its average with the start, on the main rank; what
    the manifest records of it, with the average's held-out loss (the model evaluated is the average, and the
    finetune's own validation loss is of the weights before it)."""
    if getattr(cfg, "merge_base", 0.0) <= 0:
        return None
    merged = None
    if dist.main:
        start = build.init_path(run_dir, cfg)
        lm = merge_with_start(final, start, cfg.merge_base).to(dist.device)
        merged = {"weight": cfg.merge_base, "start": str(start)}
        if b.val is not None:
            loss = CausalLMLoss(lm, "torch", b.precision.autocast, labelled_only=build.head_at_labels(cfg, dist, lm))
            merged.update(validate.evaluate(loss, b.val, None, cfg, dist, solution_only))
    dist.barrier()
    return merged


def _summary(
    b: _Built,
    cfg: TrainConfig,
    dist: Dist,
    accum: int,
    kernels: Kernels,
    counts: dict[str, int],
    fpt: float,
    metrics_path: Path,
    final: Path,
    best: tuple[int, float] | None,
) -> dict[str, Any]:
    """What the manifest says of a finished phase."""
    return {
        "steps": cfg.max_steps,
        "world_size": dist.world,
        "grad_accumulation": accum,
        "effective_batch": {"sequences": cfg.batch_size, "tokens": cfg.batch_size * b.data.seq_len},
        "parameters": {**counts, "trained": lora.trainable(b.raw)},
        "lora": cfg.lora.model_dump() if getattr(cfg, "lora", None) else None,
        "packing": _packing(b.data),
        "flops_per_token": fpt,
        "precision": b.precision.as_dict(),
        "kernels": kernels,
        "checkpointed_layers": b.checkpointed,
        "device": str(dist.device),
        **metrics.summary(metrics_path),
        "resumed_from": b.start_step or None,
        "checkpoint": str(final),
        "best": {"step": best[0], "val_loss": best[1]} if best else None,
    }


def _step(
    model: Any,
    optimizer: Any,
    scheduler: Any,
    batches: Batches,
    data: Data,
    step: int,
    accum: int,
    cfg: TrainConfig,
    dist: Dist,
) -> tuple[float, Any]:
    """One optimizer step over the global batch of `step`; (loss, grad norm)."""
    batch = collate(data, batches.indices(step), cfg.loss_on == "solution")
    global_count = int((batch.labels != -100).sum())
    mine = slice(dist.rank * cfg.batch_size // dist.world, (dist.rank + 1) * cfg.batch_size // dist.world)
    ids, tgt, pos = batch.ids[mine], batch.labels[mine], None if batch.positions is None else batch.positions[mine]
    total = torch.zeros((), device=dist.device)
    for k in range(accum):
        part = slice(k * cfg.micro_batch_size, (k + 1) * cfg.micro_batch_size)
        x = torch.from_numpy(ids[part]).to(dist.device)
        y = torch.from_numpy(tgt[part]).to(dist.device)
        p = None if pos is None else torch.from_numpy(pos[part]).to(dist.device)
        sync = k == accum - 1 or not isinstance(model, torch.nn.parallel.DistributedDataParallel)
        with contextlib.nullcontext() if sync else model.no_sync():
            # Sum over tokens / tokens of the whole global batch: every rank and micro-batch adds its exact
            # share; DDP's gradient averaging is undone by the world size.
            loss = model(x, y, p) / max(1, global_count)
            (loss * dist.world).backward()
        total += loss.detach()
    if cfg.grad_clip > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    else:
        grad_norm = _grad_norm(model)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    if dist.world > 1:
        torch.distributed.all_reduce(total)
    if dist.device.type == "cuda":
        torch.cuda.synchronize(dist.device)
    return float(total), grad_norm


def _grad_norm(model: torch.nn.Module) -> torch.Tensor:
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


def _packing(data: Data) -> dict[str, Any]:
    """How the set was packed: whole documents (how full the rows are, how many were cut) or the paper's way."""
    if isinstance(data, PackedDocuments):
        return {"kind": "documents", "rows": data.n_sequences, "fill": round(data.fill, 4), "truncated": data.truncated}
    return {"kind": "paper", "rows": data.n_sequences}
