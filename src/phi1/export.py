"""`phi1 export`: a checkpoint as one GGUF file for llama.cpp's `phi2` architecture (what llama.cpp calls
PhiForCausalLM), which llama.cpp, Ollama and LM Studio run on a laptop or a phone, and an Ollama Modelfile
beside it (`model.gguf` -> `model.Modelfile`).

Written with the `gguf` package's writer, tensor names from its PHI2 tensor map, the metadata llama.cpp's phi2
loader reads, and the tokenizer embedded as llama.cpp's `gpt2` model (byte-level BPE: tokens, merges, special
ids). What llama.cpp could not load the same way is refused with one line naming it, before anything is
written. Needs `pip install 'phi1[gguf]'`.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi1.errors import Phi1Error

DTYPES = ("f16", "q8_0")
ARCH = "phi2"
# llama.cpp's phi2 computes GELU with the tanh approximation; these activations are that function.
_GELU_TANH = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


@dataclass(frozen=True)
class Exported:
    path: Path
    modelfile: Path
    dtype: str
    tensors: int
    bytes: int


@dataclass(frozen=True)
class Vocab:
    tokens: list[str]
    types: list[int]  # gguf.TokenType per token
    merges: list[str]
    eos: int
    bos: int


def export_gguf(checkpoint: Path, out: Path, dtype: str = "f16") -> Exported:
    """Write `out` (a .gguf file) and its Modelfile from a PhiForCausalLM checkpoint folder."""
    if importlib.util.find_spec("gguf") is None:
        raise Phi1Error("phi1 export needs the gguf package: pip install 'phi1[gguf]'")
    if dtype not in DTYPES:
        raise Phi1Error(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    config = phi_config(checkpoint)
    vocab = read_vocab(checkpoint, config["vocab_size"], config.get("eos_token_id"))
    weights = _weights(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    count = _write(tmp, config, vocab, weights, dtype, name=checkpoint.resolve().name)
    os.replace(tmp, out)  # a killed export leaves no half-written file under the final name
    modelfile = write_modelfile(out, vocab, config["max_position_embeddings"])
    return Exported(out, modelfile, dtype, count, out.stat().st_size)


def phi_config(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's config.json, checked against what llama.cpp's phi2 graph computes."""
    path = checkpoint / "config.json"
    if not path.is_file():
        raise Phi1Error(f"{checkpoint}: not a checkpoint folder (no config.json)")
    config = json.loads(path.read_text())
    archs = config.get("architectures") or []
    if config.get("model_type") != "phi" or archs != ["PhiForCausalLM"]:
        raise Phi1Error(f"{path}: {archs or config.get('model_type')} is not PhiForCausalLM (llama.cpp's phi2)")
    rope = rope_parameters(config)
    problems = {
        "qk_layernorm": config.get("qk_layernorm") and "llama.cpp's phi2 has no q/k layer norms",
        "rope_scaling": (config.get("rope_scaling") or rope["rope_type"] != "default")
        and "llama.cpp's phi2 loader reads no rope scaling",
        "hidden_act": config.get("hidden_act", "gelu_new") not in _GELU_TANH
        and f"{config.get('hidden_act')}: llama.cpp's phi2 computes tanh-approximated GELU",
        "tie_word_embeddings": config.get("tie_word_embeddings") and "llama.cpp's phi2 needs its own output layer",
    }
    for field, problem in problems.items():
        if problem:
            raise Phi1Error(f"{path}: {field}: {problem}")
    return config


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """Rotary settings wherever the config keeps them: transformers 5 nests them in `rope_parameters`,
    earlier versions wrote them at the top level."""
    nested = config.get("rope_parameters") or {}
    return {
        "partial_rotary_factor": nested.get("partial_rotary_factor", config.get("partial_rotary_factor", 0.5)),
        "rope_theta": nested.get("rope_theta", config.get("rope_theta", 10000.0)),
        "rope_type": nested.get("rope_type", "default"),
    }


def read_vocab(checkpoint: Path, vocab_size: int, eos_id: int | None) -> Vocab:
    """The tokenizer as llama.cpp's `gpt2` model: byte-level BPE with GPT-2's pre-tokenizer, padded to the
    model's vocabulary size."""
    import gguf

    path = checkpoint / "tokenizer.json"
    if not path.is_file():
        raise Phi1Error(f"{checkpoint}: no tokenizer.json: llama.cpp needs a fast (tokenizers) BPE tokenizer")
    spec = json.loads(path.read_text())
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise Phi1Error(f"{path}: a {model.get('type')} tokenizer: llama.cpp's gpt2 tokenizer is byte-level BPE")
    if not _gpt2_pre_tokenizer(spec.get("pre_tokenizer")):
        raise Phi1Error(f"{path}: pre_tokenizer is not GPT-2's byte-level one: llama.cpp would split text otherwise")
    ids: dict[str, int] = dict(model["vocab"])
    special = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    ids.update(special)
    if max(ids.values()) >= vocab_size:
        raise Phi1Error(f"{path}: token id {max(ids.values())} is beyond the model's vocab_size {vocab_size}")
    by_id = {i: t for t, i in ids.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        tokens.append(token if token is not None else f"[PAD{i}]")
        kind = gguf.TokenType.CONTROL if token in special else gguf.TokenType.NORMAL
        types.append(int(kind if token is not None else gguf.TokenType.UNUSED))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    eos = eos_id if eos_id is not None else special.get("<|endoftext|>")
    if eos is None:
        raise Phi1Error(f"{checkpoint}: no end-of-text token (config.json eos_token_id)")
    return Vocab(tokens, types, merges, eos, eos)


def _gpt2_pre_tokenizer(pre: dict | None) -> bool:
    """ByteLevel with its regex (GPT-2's split), alone or as the only step of a sequence."""
    if pre is None:
        return False
    if pre.get("type") == "Sequence":
        steps = pre.get("pretokenizers") or []
        return len(steps) == 1 and _gpt2_pre_tokenizer(steps[0])
    return pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space", False)


def _weights(checkpoint: Path) -> dict[str, Any]:
    """Every tensor of the checkpoint's safetensors files, as float32 numpy arrays."""
    from safetensors.torch import load_file

    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise Phi1Error(f"{checkpoint}: no .safetensors weights")
    state: dict[str, Any] = {}
    for f in files:
        state.update({k: v.float().numpy() for k, v in load_file(f).items()})
    return state


def _write(path: Path, config: dict, vocab: Vocab, weights: dict[str, Any], dtype: str, name: str) -> int:
    import gguf

    writer = gguf.GGUFWriter(str(path), ARCH)
    _metadata(writer, config, dtype, name)
    _tokenizer(writer, vocab)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.PHI2, config["num_hidden_layers"])
    for key, array in weights.items():
        target = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise Phi1Error(f"{key}: a tensor llama.cpp's phi2 has no place for")
        data, raw = _encode(array, dtype)
        writer.add_tensor(target, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return len(weights)


def _metadata(writer: Any, config: dict, dtype: str, name: str) -> None:
    import gguf

    n_embd, n_head = config["hidden_size"], config["num_attention_heads"]
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.get("num_key_value_heads") or n_head)
    writer.add_layer_norm_eps(config.get("layer_norm_eps", 1e-5))
    rope = rope_parameters(config)
    writer.add_rope_dimension_count(int(rope["partial_rotary_factor"] * (n_embd // n_head)))
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    ftype = gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(int(ftype))
    if dtype != "f16":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _tokenizer(writer: Any, vocab: Vocab) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    writer.add_eos_token_id(vocab.eos)
    writer.add_bos_token_id(vocab.bos)
    writer.add_add_bos_token(False)  # phi-1 is trained without a leading BOS


def _encode(array: Any, dtype: str) -> tuple[Any, Any]:
    """1-D tensors (norms, biases) stay float32, as llama.cpp's converter keeps them; matrices become f16, or
    q8_0 where their rows are whole blocks of 32 (else f16)."""
    import gguf
    import numpy as np

    if array.ndim == 1:
        return array.astype(np.float32), gguf.GGMLQuantizationType.F32
    if dtype == "q8_0" and array.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        q = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(array.astype(np.float32), q), q
    return array.astype(np.float16), gguf.GGMLQuantizationType.F16


def write_modelfile(gguf_path: Path, vocab: Vocab, context: int) -> Path:
    """Ollama's recipe for the file: `ollama create NAME -f Modelfile`. The prompt is passed as is (a code
    completion model has no chat template), greedy by default, stopping at end of text."""
    eos = vocab.tokens[vocab.eos]
    lines = [
        f"FROM ./{gguf_path.name}",
        'TEMPLATE """{{ .Prompt }}"""',
        f'PARAMETER stop "{eos}"',
        "PARAMETER temperature 0",
        f"PARAMETER num_ctx {context}",
        "",
    ]
    path = gguf_path.with_suffix(".Modelfile")  # beside it, one per exported file
    path.write_text("\n".join(lines))
    return path
