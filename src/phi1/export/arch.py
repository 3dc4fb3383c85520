"""What each architecture is in llama.cpp: which of its graphs computes the checkpoint's model, the metadata
that graph's loader reads, and how a tensor's layout differs from transformers'. What llama.cpp would compute
otherwise is refused in one line naming the field, before anything is written.

- `phi2`: PhiForCausalLM (phi1's own models).
- `llama`: LlamaForCausalLM and MistralForCausalLM (SmolLM2, Llama 2/3, Mistral). llama.cpp rotates pairs of
  adjacent dimensions where transformers rotates the two halves of a head: q and k rows are permuted, as
  llama.cpp's convert_hf_to_gguf.py does.
- `qwen2`: Qwen2ForCausalLM (Qwen2, Qwen2.5, Qwen2.5-Coder): llama.cpp rotates halves there too (NEOX), no
  permutation; q, k and v have biases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi1.errors import Phi1Error

# llama.cpp's phi2 computes GELU with the tanh approximation; these activations are that function.
_GELU_TANH = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


@dataclass(frozen=True)
class Arch:
    name: str  # llama.cpp's architecture
    model_types: tuple[str, ...]
    permute_qk: bool = False


ARCHS = (Arch("phi2", ("phi",)), Arch("llama", ("llama", "mistral"), permute_qk=True), Arch("qwen2", ("qwen2",)))


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """Rotary settings wherever the config keeps them: transformers 5 nests them in `rope_parameters`,
    earlier versions wrote them at the top level."""
    nested = config.get("rope_parameters") or {}
    return {
        "partial_rotary_factor": nested.get("partial_rotary_factor", config.get("partial_rotary_factor", 0.5)),
        "rope_theta": nested.get("rope_theta", config.get("rope_theta", 10000.0)),
        "rope_type": nested.get("rope_type", "default"),
    }


def read_config(checkpoint: Path) -> tuple[Arch, dict[str, Any]]:
    """The checkpoint's llama.cpp architecture and config.json, checked against what that graph computes."""
    path = checkpoint / "config.json"
    if not path.is_file():
        raise Phi1Error(f"{checkpoint}: not a checkpoint folder (no config.json)")
    config = json.loads(path.read_text())
    model_type = config.get("model_type")
    arch = next((a for a in ARCHS if model_type in a.model_types), None)
    if arch is None:
        known = ", ".join(t for a in ARCHS for t in a.model_types)
        raise Phi1Error(f"{path}: phi1 export writes {known} models for llama.cpp; {model_type} is not one of them")
    rope = rope_parameters(config)
    scaled = (config.get("rope_scaling") or rope["rope_type"] != "default") and (
        f"llama.cpp's {arch.name} loader reads no rope scaling from phi1's export"
    )
    if arch.name == "phi2":
        archs = config.get("architectures") or []
        if archs != ["PhiForCausalLM"]:
            raise Phi1Error(f"{path}: {archs or model_type} is not PhiForCausalLM (llama.cpp's phi2)")
        problems = {
            "qk_layernorm": config.get("qk_layernorm") and "llama.cpp's phi2 has no q/k layer norms",
            "rope_scaling": scaled,
            "hidden_act": config.get("hidden_act", "gelu_new") not in _GELU_TANH
            and f"{config.get('hidden_act')}: llama.cpp's phi2 computes tanh-approximated GELU",
            "tie_word_embeddings": config.get("tie_word_embeddings") and "llama.cpp's phi2 needs its own output layer",
        }
    else:
        problems = {
            "rope_scaling": scaled,
            "hidden_act": config.get("hidden_act", "silu") != "silu"
            and f"{config.get('hidden_act')}: llama.cpp's {arch.name} computes SiLU",
            "attention_bias": arch.name == "llama"
            and config.get("attention_bias")
            and "llama.cpp's llama reads no attention biases",
            "mlp_bias": config.get("mlp_bias") and f"llama.cpp's {arch.name} reads no MLP biases",
            "sliding_window": arch.name == "llama"
            and config.get("sliding_window")
            and "llama.cpp's llama has no sliding-window attention",
        }
    for field, problem in problems.items():
        if problem:
            raise Phi1Error(f"{path}: {field}: {problem}")
    return arch, config


def head_dim(config: dict[str, Any]) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def metadata(writer: Any, arch: Arch, config: dict[str, Any]) -> None:
    """What llama.cpp's loader of `arch` reads (llama-model.cpp)."""
    n_head = config["num_attention_heads"]
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.get("num_key_value_heads") or n_head)
    rope = rope_parameters(config)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    if arch.name == "phi2":
        writer.add_layer_norm_eps(config.get("layer_norm_eps", 1e-5))
        writer.add_rope_dimension_count(int(rope["partial_rotary_factor"] * head_dim(config)))
    else:
        writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
        writer.add_rope_dimension_count(head_dim(config))
        writer.add_vocab_size(config["vocab_size"])


def transform(arch: Arch, key: str, array: Any, config: dict[str, Any]) -> Any:
    """A tensor in llama.cpp's layout: for `llama`, the rows of q and k grouped by head and reordered from
    transformers' halves to llama.cpp's interleaved pairs (convert_hf_to_gguf.py's LlamaModel.permute)."""
    if not arch.permute_qk:
        return array
    if key.endswith(("q_proj.weight", "q_proj.bias")):
        heads = config["num_attention_heads"]
    elif key.endswith(("k_proj.weight", "k_proj.bias")):
        heads = config.get("num_key_value_heads") or config["num_attention_heads"]
    else:
        return array
    shape = array.shape
    return array.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
