"""WiSE-FT (Wortsman et al., 2022): the finetuned weights averaged with the weights finetuning started from.

A short finetune on narrow data teaches its format and shape and makes the model forget some of what it knew;
the average of the two models keeps most of both (on `make run`'s demonstration, HumanEval: the base 7/164, its
finetune 4/164, their average 10/164: docs/benchmarks.md). `finetune.merge_base` is the start's share.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from phi1.errors import Phi1Error


def merge_with_start(final: Path, start: Path, weight: float) -> Any:
    """Rewrite the inference checkpoint `final` as (1 - weight) x its weights + weight x those of `start` (the
    checkpoint finetuning began from, the same architecture), in fp32; the averaged model (fp32, on the CPU)."""
    from transformers import AutoModelForCausalLM

    tuned = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32, local_files_only=True)
    begun = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32, local_files_only=True).state_dict()
    seen: set[int] = set()
    with torch.no_grad():
        for name, w in tuned.state_dict().items():
            if w.data_ptr() in seen:  # a tied weight (the output layer is the embedding): averaged once
                continue
            seen.add(w.data_ptr())
            if name not in begun or begun[name].shape != w.shape:
                raise Phi1Error(f"finetune.merge_base: {start} has no weight {name} of shape {tuple(w.shape)} to "
                                "average with the finetuned one")  # fmt: skip
            w.mul_(1 - weight).add_(begun[name], alpha=weight)
    # Written beside and moved in: the loaded weights may still be mapped from the files they replace.
    tmp = final.with_name(final.name + ".merged")
    shutil.rmtree(tmp, ignore_errors=True)
    tuned.save_pretrained(tmp)
    for f in tmp.iterdir():
        os.replace(f, final / f.name)
    tmp.rmdir()
    return tuned
