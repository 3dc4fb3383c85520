"""Checkpoints: the weights with `save_pretrained` (safetensors) plus the tokenizer, so that any checkpoint
loads with `AutoModelForCausalLM.from_pretrained`, and beside them the trainer state (optimizer,
scheduler, every RNG, the step and data position) for an exact resume."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE = "trainer_state.pt"


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
