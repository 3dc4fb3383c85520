"""The phi-1 architecture as transformers' `PhiConfig` / `PhiForCausalLM`, so that every checkpoint loads
with `AutoModelForCausalLM` and serves in vLLM without conversion.

Presets: `tiny` (a few million parameters, CPU), `small` (~90M, one GPU), `phi-1-small` (~350M) and `phi-1`
(1.418B, field by field the config of the released microsoft/phi-1). A user's own base model instead of a preset
is `phi1.base_model`'s; the counts below take any causal LM's config.
"""

from __future__ import annotations

from typing import Any

from transformers import PhiConfig

from phi1.errors import Phi1Error

# microsoft/phi-1's config.json (architecture fields). Its released dropouts are 0; training dropout is
# set by the trainer (the paper used 0.1 for attention and residual dropout).
PHI_1: dict[str, Any] = {
    "vocab_size": 51200,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 24,
    "num_attention_heads": 32,
    "num_key_value_heads": None,
    "hidden_act": "gelu_new",
    "max_position_embeddings": 2048,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-05,
    "use_cache": True,
    "tie_word_embeddings": False,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "partial_rotary_factor": 0.5,  # rotary dim 32 of head dim 64
    "qk_layernorm": False,
    "resid_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "attention_dropout": 0.0,
    "bos_token_id": None,
    "eos_token_id": None,
}

PRESETS: dict[str, dict[str, Any]] = {
    "phi-1": dict(PHI_1),
    # The paper's phi-1-small: 20 layers, width 1024, MLP 4096, 16 heads, rotary dim 32.
    "phi-1-small": {**PHI_1, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 20,
                    "num_attention_heads": 16},
    "small": {**PHI_1, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
              "num_attention_heads": 8, "partial_rotary_factor": 0.5},
    "tiny": {**PHI_1, "vocab_size": 8192, "hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4,
             "num_attention_heads": 4, "partial_rotary_factor": 0.5, "max_position_embeddings": 1024},
}  # fmt: skip


def model_config(preset: str, overrides: dict[str, Any] | None = None, vocab_size: int | None = None,
                 eos_token_id: int | None = None) -> PhiConfig:  # fmt: skip
    """A PhiConfig from a preset, the tokenizer's vocabulary size and end-of-text id, and overrides."""
    if preset not in PRESETS:
        raise Phi1Error(f"model.preset: unknown preset {preset!r}: one of {', '.join(PRESETS)}")
    fields = dict(PRESETS[preset])
    if vocab_size is not None:
        fields["vocab_size"] = vocab_size
    if eos_token_id is not None:
        fields["eos_token_id"] = fields["bos_token_id"] = fields["pad_token_id"] = eos_token_id
    for key, value in (overrides or {}).items():
        if key not in PhiConfig().to_dict() and key not in fields:
            raise Phi1Error(f"model.overrides: {key!r} is not a PhiConfig field")
        fields[key] = value
    head_dim = fields["hidden_size"] // fields["num_attention_heads"]
    if head_dim * fields["num_attention_heads"] != fields["hidden_size"]:
        raise Phi1Error(f"model: hidden_size {fields['hidden_size']} is not divisible by the number of heads")
    return PhiConfig(**fields)


def count_parameters(config: Any) -> dict[str, int]:
    """Parameter counts of any causal LM's config without building the weights (meta device); tied input and
    output embeddings count once."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    return {"total": total, "non_embedding": total - embedding}


def flops_per_token(config: Any, seq_len: int, non_embedding_params: int, frozen_layers: int = 0) -> float:
    """Training FLOPs per token: 6N + 12·L·d·T (weights, forward and backward, plus attention scores). With the
    bottom `frozen_layers` frozen the forward pass is whole (2N + 4·L·d·T) and the backward pass (twice the
    forward) runs through the layers above them only."""
    from phi1.base_model import width_and_depth

    width, depth = width_and_depth(config)
    forward = 2 * non_embedding_params + 4 * depth * width * seq_len
    return forward * (3 * depth - 2 * frozen_layers) // depth  # an integer, as the manifests have always held it
