"""Checkpoints, the one owner of their format: the weights with `save_pretrained` (safetensors) plus the
tokenizer, so that any checkpoint loads with `AutoModelForCausalLM.from_pretrained`, and beside them the
trainer state (optimizer, scheduler, every RNG, the step and data position) for an exact resume; the
inference checkpoints `best` and `final`; which checkpoints are kept."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from phi1.base_model import dropout_settings
from phi1.errors import Phi1Error
from phi1.train import lora, metrics

if TYPE_CHECKING:
    from phi1.config import TrainConfig
    from phi1.train.distributed import Dist

STATE = "trainer_state.pt"
BEST, FINAL = "best", "final"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(folder: Path, model: Any, tokenizer: Any, model_state: dict[str, Any], trainer_state: dict[str, Any]) -> None:
    """Write to a temporary folder, then rename: a checkpoint folder that exists is complete."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per checkpoint would drown the training bar
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, state_dict=model_state, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    torch.save(trainer_state, tmp / STATE)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def latest(root: Path) -> Path | None:
    found = sorted(p for p in root.glob("step-*") if (p / STATE).exists() and not p.name.endswith(".tmp"))
    return found[-1] if found else None


def prune(root: Path, keep: int, protect: Iterable[int] = ()) -> None:
    """Keep the last `keep` checkpoints, and those of the `protect`ed steps."""
    kept = {f"step-{s:07d}" for s in protect}
    found = sorted(p for p in root.glob("step-*") if not p.name.endswith(".tmp") and p.name not in kept)
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def save_training(
    folder: Path,
    raw: Any,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    step: int,
    dist: Dist,
    cfg: TrainConfig,
    adapters: Any = None,
) -> None:
    """A resumable checkpoint: the model as inference loads it (LoRA: merged), and the trainer's state (LoRA:
    with the adapters alone, which a resume puts back on the frozen base)."""
    model, model_state = _saved_model(raw, adapters, dist)
    optim_state = _optimizer_state(raw, optimizer, dist)
    rng = [rng_state()]
    if dist.world > 1:  # every rank's own stream: dropout masks differ by rank
        rng = [None] * dist.world
        torch.distributed.all_gather_object(rng, rng_state())
    if dist.main:
        state = {
            "step": step,
            "optimizer": optim_state,
            "scheduler": scheduler.state_dict(),
            "rng": rng,
            "world_size": dist.world,
        }
        save(folder, model, tokenizer, model_state, state)
        if adapters is not None:
            from safetensors.torch import save_file

            save_file(lora.adapter_state(adapters), str(folder / lora.ADAPTERS))
        prune(folder.parent, cfg.keep_checkpoints, protect=cfg.keep_steps)
    dist.barrier()


def load(folder: Path, raw: Any, optimizer: Any, scheduler: Any, dist: Dist, adapters: Any = None) -> tuple[int, Any]:
    """Weights, optimizer and scheduler from a checkpoint; (its step, its RNG states). With LoRA only the
    adapters are read: the frozen base is the one the phase started from."""
    from safetensors.torch import load_file

    state = torch.load(folder / STATE, map_location="cpu", weights_only=False)
    weights = None if adapters is not None else load_file(str(folder / "model.safetensors"))
    if adapters is not None:
        lora.load_adapter_state(adapters, folder)
    if dist.world > 1:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True)
        if weights is not None:
            set_model_state_dict(raw, weights, options=options)
        set_optimizer_state_dict(raw, optimizer, state["optimizer"], options=options)
    else:
        if weights is not None:
            missing, unexpected = raw.load_state_dict(weights, strict=False)
            if unexpected or [k for k in missing if "lm_head" not in k]:
                raise Phi1Error(f"{folder}: checkpoint does not match the model ({missing[:3]} {unexpected[:3]})")
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["step"]), state.get("rng")


def save_final(
    final: Path, raw: Any, tokenizer: Any, cfg: TrainConfig, dist: Dist, best: Path | None, adapters: Any = None
) -> None:
    """The model to use: the last step's weights, or (keep_best) those of the best validation loss."""
    if best is not None and (best / "model.safetensors").exists():
        if dist.main:
            shutil.rmtree(final, ignore_errors=True)
            shutil.copytree(best, final)
        dist.barrier()
        return
    save_weights(final, raw, tokenizer, {"step": cfg.max_steps}, dist, adapters)


def link_tree(source: Path, folder: Path) -> None:
    """`folder` made a copy of the checkpoint folder `source`: its files hard-linked where the two share a file
    system (no bytes copied, and the run keeps them if the source is deleted), else copied."""
    shutil.rmtree(folder, ignore_errors=True)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, tmp, copy_function=link_or_copy)
    tmp.replace(folder)  # whole or absent


def save_weights(
    folder: Path, raw: Any, tokenizer: Any, state: dict[str, Any], dist: Dist, adapters: Any = None
) -> None:
    """An inference checkpoint (no optimizer; LoRA merged): loads with from_pretrained, dropout off."""
    model, model_state = _saved_model(raw, adapters, dist)
    if dist.main:
        training = {k: getattr(model.config, k) for k in dropout_settings(model.config, 0.0)}
        for k, v in dropout_settings(model.config, 0.0).items():  # the inference config: no dropout
            setattr(model.config, k, v)
        save(folder, model, tokenizer, model_state, state)
        for k, v in training.items():
            setattr(model.config, k, v)
        (folder / STATE).unlink(missing_ok=True)
    dist.barrier()


def best_so_far(metrics_path: Path, step: int) -> tuple[int, float] | None:
    """(step, validation loss) of the best evaluation logged up to `step` (a resumed run's history)."""
    rows = [r for r in metrics.read(metrics_path) if "val_loss" in r and 0 < r["step"] <= step]
    if not rows or not (metrics_path.parent / BEST / "model.safetensors").exists():
        return None
    row = min(rows, key=lambda r: r["val_loss"])
    return row["step"], row["val_loss"]


def _saved_model(raw: Any, adapters: Any, dist: Dist) -> tuple[Any, dict[str, torch.Tensor]]:
    """The model a checkpoint holds and its weights: the trained model, or with LoRA a copy with the adapters
    merged (plain weights under the model's own names)."""
    if adapters is not None:
        model = lora.merged(adapters)
        return model, {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return raw, _model_state(raw, dist)


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
