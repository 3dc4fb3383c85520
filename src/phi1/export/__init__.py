"""`phi1 export`: a checkpoint as one GGUF file, which llama.cpp, Ollama and LM Studio run on a laptop or a
phone, and an Ollama Modelfile beside it (`model.gguf` -> `model.Modelfile`). phi1's own models go to
llama.cpp's `phi2` architecture; the bases users bring, Llama-architecture models (SmolLM2, Llama, Mistral) to
its `llama` and Qwen2 models to its `qwen2` (`phi1.export.arch`).

Written with the `gguf` package's writer, tensor names from its tensor map of that architecture, the metadata
llama.cpp's loader reads, and the tokenizer embedded as llama.cpp's `gpt2` model (`phi1.export.vocab`). What
llama.cpp could not load the same way is refused with one line naming it, before anything is written. Needs
`pip install 'phi1[gguf]'`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi1.errors import Phi1Error
from phi1.export.arch import Arch, metadata, read_config, rope_parameters, transform
from phi1.export.vocab import Vocab, read_vocab, write_tokenizer

__all__ = ["DTYPES", "Exported", "export_gguf", "rope_parameters", "tensor_names", "write_modelfile"]

DTYPES = ("f16", "q8_0")


@dataclass(frozen=True)
class Exported:
    path: Path
    modelfile: Path
    dtype: str
    tensors: int
    bytes: int
    arch: str


def export_gguf(checkpoint: Path, out: Path, dtype: str = "f16") -> Exported:
    """Write `out` (a .gguf file) and its Modelfile from a checkpoint folder of a phi, llama, mistral or qwen2
    model."""
    if importlib.util.find_spec("gguf") is None:
        raise Phi1Error("phi1 export needs the gguf package: pip install 'phi1[gguf]'")
    if dtype not in DTYPES:
        raise Phi1Error(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    arch, config = read_config(checkpoint)
    vocab = read_vocab(checkpoint, config["vocab_size"], config.get("eos_token_id"))
    weights = _weights(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    count = _write(tmp, arch, config, vocab, weights, dtype, name=checkpoint.resolve().name)
    os.replace(tmp, out)  # a killed export leaves no half-written file under the final name
    modelfile = write_modelfile(out, vocab, config["max_position_embeddings"])
    return Exported(out, modelfile, dtype, count, out.stat().st_size, arch.name)


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


def tensor_names(arch: Arch, layers: int) -> Any:
    """The gguf package's map from transformers' tensor names to llama.cpp's, for `arch`."""
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.name.upper()], layers)


def _write(path: Path, arch: Arch, config: dict, vocab: Vocab, weights: dict[str, Any], dtype: str,
           name: str) -> int:  # fmt: skip
    import gguf

    writer = gguf.GGUFWriter(str(path), arch.name)
    _metadata(writer, arch, config, dtype, name)
    write_tokenizer(writer, vocab)
    names = tensor_names(arch, config["num_hidden_layers"])
    for key, array in weights.items():
        target = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise Phi1Error(f"{key}: a tensor llama.cpp's {arch.name} has no place for")
        data, raw = _encode(transform(arch, key, array, config), dtype)
        writer.add_tensor(target, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return len(weights)


def _metadata(writer: Any, arch: Arch, config: dict, dtype: str, name: str) -> None:
    import gguf

    writer.add_name(name)
    metadata(writer, arch, config)
    ftype = gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(int(ftype))
    if dtype != "f16":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


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
