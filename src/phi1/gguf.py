"""A GGUF file (llama.cpp's format, how small models often ship) wherever phi1 takes a transformers checkpoint:
the hf teacher, `phi1 eval --model`, a `causal:` encoder, `finetune.init_from`. It is dequantized once into an
ordinary checkpoint folder in phi1's cache (fp32 safetensors, its tokenizer beside it), and that folder is used
from then on. Needs `pip install 'phi1[gguf]'` (the gguf and accelerate packages)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phi1.errors import Phi1Error
from phi1.user_cache import user_cache

# Bumped when a conversion changes: 2, the pre-tokenizer of llama.cpp's `tokenizer.ggml.pre` (PRE_TOKENIZERS).
CONVERTER = 2


def cache_dir() -> Path:
    return user_cache("gguf")


def as_checkpoint(path: str | Path, field: str = "model") -> Path:
    """`path` itself, or for a .gguf file the checkpoint folder it was converted to (converting it the first
    time). `field` names the setting in error messages."""
    p = Path(path)
    if p.suffix.lower() != ".gguf":
        return p
    if not p.is_file():
        raise Phi1Error(f"{field}: {p}: no such GGUF file")
    stat = p.stat()
    identity = f"{p.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{CONVERTER}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]
    out = cache_dir() / f"{p.stem}-{key}"
    if not (out / "config.json").exists():
        _convert(p, out, field)
    return out


def _convert(p: Path, out: Path, field: str) -> None:
    for module in ("gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            raise Phi1Error(f"{field}: {p}: reading a GGUF file needs the {module} package: pip install 'phi1[gguf]'")
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with _parsed_once():
            tokenizer = gguf_tokenizer(p)
            model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=torch.float32)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Phi1Error(f"{field}: {p}: transformers cannot read this GGUF file: {first}") from None
    # The weights are plain fp32 tensors now, but transformers still marks the model as gguf-quantized and
    # refuses to save it ("quantized with gguf and is not serializable"): it is an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(out)  # whole or not at all: a killed conversion leaves no half checkpoint behind
    except OSError:  # another process converted it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _parsed_once() -> Iterator[None]:
    """transformers parses a GGUF file anew for its config, its tokenizer and its weights, and builds the gguf
    package's tensor-name map again for each of its ~400 tensors: for SmolLM2-135M (49k vocabulary entries and
    merges to parse each time) 22.6 s of a first conversion, 9.4 s with each file parsed and each map built once,
    the same files written (measured on 2 AMD EPYC cores). transformers imports both from `gguf` when it calls
    them, so they are swapped for memoized ones for this block only."""
    import gguf

    real_reader, real_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}

    def reader(path: str | os.PathLike[str], mode: str = "r") -> Any:
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = real_reader(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.cache(real_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real_reader, real_map


def _smollm_pre_tokenizer() -> object:
    from tokenizers import pre_tokenizers

    # llama.cpp's `smollm`: every digit on its own, then GPT-2's split (SmolLM2's own tokenizer.json says the same).
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )


# Pre-tokenizers (llama.cpp's `tokenizer.ggml.pre`) that transformers' GGUF reader does not rebuild: without
# them it splits "\n    1" as "\n   ", " ", "1" where llama.cpp and the model's training split "\n    ", "1".
PRE_TOKENIZERS = {"smollm": _smollm_pre_tokenizer}


def gguf_tokenizer(p: Path) -> object:
    """The tokenizer of a GGUF file as llama.cpp tokenizes (transformers rebuilds it from the file's metadata;
    phi1 puts back the pre-tokenizers it misses)."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    field = gguf.GGUFReader(p).fields.get("tokenizer.ggml.pre")
    pre = field.contents() if field is not None else None
    if pre in PRE_TOKENIZERS:
        tokenizer.backend_tokenizer.pre_tokenizer = PRE_TOKENIZERS[pre]()
    return tokenizer
