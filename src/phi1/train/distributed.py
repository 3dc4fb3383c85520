"""Distributed set-up: rank, world size and device from torchrun's environment; the model replicated (DDP)
or sharded (FSDP2), its optimizer and schedule; each rank's random stream; the accelerator's peak for MFU."""

from __future__ import annotations

import gc
import os
from typing import Any

import torch

from phi1.base_model import decoder_layers
from phi1.config import TrainConfig
from phi1.errors import Phi1Error
from phi1.train import checkpoint
from phi1.train.kernels import CausalLMLoss
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


def grad_accumulation(cfg: TrainConfig, dist: Dist, phase: str) -> int:
    per_step = cfg.micro_batch_size * dist.world
    if cfg.batch_size % per_step:
        raise Phi1Error(
            f"{phase}.batch_size {cfg.batch_size} is not divisible by micro_batch_size "
            f"{cfg.micro_batch_size} x world size {dist.world}"
        )
    return cfg.batch_size // per_step


def parallelize(loss_model: CausalLMLoss, cfg: TrainConfig, dist: Dist) -> tuple[Any, Any, Any]:
    """(model to call: the LM with its loss, optimizer, scheduler): on the device, sharded (FSDP2) or replicated
    (DDP), compiled."""
    raw = loss_model.lm
    loss_model.to(dist.device)
    if dist.world > 1 and cfg.parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in decoder_layers(raw):
            fully_shard(layer)
        fully_shard(raw)
    # After sharding: FSDP2 replaces the parameters, and the optimizer must hold the sharded ones. Frozen
    # parameters (LoRA's base) are left out: no optimizer state is kept for them.
    trained = [p for p in raw.parameters() if p.requires_grad]
    decay = [p for p in trained if p.ndim >= 2]
    no_decay = [p for p in trained if p.ndim < 2]
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


def _adamw(groups: list[dict[str, Any]], cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """Fused AdamW (one kernel for all parameters; on CPU too since torch 2.4) where it is available."""
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def seed_ranks(seed: int, dist: Dist, start_step: int, rng: Any) -> None:
    """Each rank's own random stream: restored from the checkpoint when it holds one per rank of this world."""
    if isinstance(rng, list) and len(rng) == dist.world:
        checkpoint.set_rng_state(rng[dist.rank])
    elif isinstance(rng, dict) and dist.world == 1:  # a checkpoint from before per-rank states
        checkpoint.set_rng_state(rng)
    else:
        torch.manual_seed(seed * 1000 + dist.rank + start_step)
