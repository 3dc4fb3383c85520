"""LoRA (`finetune.lora`) through peft: low-rank adapters injected into the model's linear layers, the rest
frozen. The model the loop trains stays the transformers model (peft injects its layers in place), so the loss,
the fused kernels and activation checkpointing see what they always see; peft's wrapper is kept beside it to
merge the adapters for every saved inference checkpoint (plain weights: evaluation, `phi1 export` and vLLM load
them unchanged) and to save the adapters alone for an exact resume.

Why: a full finetune of a 1.3B model keeps ~21 GB of AdamW state; adapters of rank 16 keep a few MB.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from pathlib import Path
from typing import Any

from phi1.config_train import LoraConfig, TrainConfig
from phi1.errors import Phi1Error

ADAPTERS = "adapters.safetensors"  # in a training checkpoint: the adapters' weights, what a resume loads


def add_adapters(lm: Any, cfg: TrainConfig, world: int) -> Any | None:
    """Inject `cfg.lora`'s adapters into `lm` (in place, base weights frozen); peft's wrapper, or None."""
    lora: LoraConfig | None = getattr(cfg, "lora", None)
    if lora is None:
        return None
    if importlib.util.find_spec("peft") is None:
        raise Phi1Error("finetune.lora needs the peft package: pip install 'phi1[lora]'")
    if world > 1 and cfg.parallel == "fsdp":
        raise Phi1Error("finetune.lora runs with parallel ddp, not fsdp (the adapters are small: replicate them)")
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets: str | list[str] = "all-linear" if lora.targets == ["all-linear"] else list(lora.targets)
    config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                            task_type="CAUSAL_LM")  # fmt: skip
    try:
        with warnings.catch_warnings():
            # peft asks for `is_gradient_checkpointing`, which transformers 5 warns is deprecated: nothing a user
            # of phi1 can act on.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            wrapper = get_peft_model(lm, config)
    except ValueError as exc:  # peft's word for targets that name no module of this model
        raise Phi1Error(f"finetune.lora.targets: {exc}".splitlines()[0]) from None
    if _checkpointing(lm):
        lm.enable_input_require_grads()  # recomputed layers need an input that requires grad
    return wrapper


def _checkpointing(lm: Any) -> bool:
    """Whether activation checkpointing is on: transformers 5's name, or the one before it."""
    if hasattr(type(lm), "is_activation_checkpointing"):
        return bool(lm.is_activation_checkpointing)
    return bool(getattr(lm, "is_gradient_checkpointing", False))


def merged(adapters: Any) -> Any:
    """A copy of the model with its adapters merged into the weights: an ordinary transformers model."""
    return copy.deepcopy(adapters).merge_and_unload()


def adapter_state(adapters: Any) -> dict[str, Any]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(adapters).items()}


def load_adapter_state(adapters: Any, folder: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = folder / ADAPTERS
    if not path.exists():
        raise Phi1Error(f"{folder}: a LoRA checkpoint without {ADAPTERS}; resume with --force to start over")
    set_peft_model_state_dict(adapters, load_file(str(path)))


def trainable(lm: Any) -> int:
    return sum(p.numel() for p in lm.parameters() if p.requires_grad)
