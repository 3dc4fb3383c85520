"""Training metrics: one JSON line per log interval and evaluation (`metrics.jsonl`, also TensorBoard), read
back for the manifest's summary and for a resumed run's history."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import numpy as np
import torch


def tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))


def log(path: Path, writer: Any, row: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    if writer is not None:
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                writer.add_scalar(key, value, row["step"])


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate(path: Path, step: int) -> None:
    """Drop what a killed run logged after the checkpoint it is resumed from (all of it, starting afresh)."""
    rows = [r for r in read(path) if r["step"] <= step] if step > 0 else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def summary(metrics_path: Path) -> dict[str, Any]:
    rows = read(metrics_path)
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


def memory_gb(device: torch.device) -> float:
    """The peak memory since the last call: on a GPU, allocated by torch; on a CPU, the process's peak RSS
    (which cannot be reset: the peak so far)."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 1e9
        torch.cuda.reset_peak_memory_stats(device)
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def step_row(
    step: int,
    loss: float,
    lr: float,
    grad_norm: float,
    tokens: int,
    tokens_per_s: float,
    step_s: float,
    mfu: float | None,
    device: torch.device,
    epochs: float,
) -> dict[str, Any]:
    """One log interval's line of metrics.jsonl."""
    return {
        "step": step,
        "loss": round(loss, 6),
        "lr": lr,
        "grad_norm": round(grad_norm, 4),
        "tokens": tokens,
        "tokens_per_s": round(tokens_per_s, 1),
        "step_s": round(step_s, 4),
        "mfu": round(mfu, 4) if mfu is not None else None,
        "memory_gb": round(memory_gb(device), 3),
        "epochs": round(epochs, 3),
    }
