"""A checkpoint's tokenizer as llama.cpp's `gpt2` tokenizer model: byte-level BPE (tokens, merges, special ids)
and the name of the pre-tokenizer that splits text before BPE (`tokenizer.ggml.pre`): GPT-2's, SmolLM's (every
digit alone), or a split regex that llama.cpp knows by name (Llama 3's, Qwen2's, ...). Anything else is refused:
llama.cpp would split text otherwise than the model was trained on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi1.errors import Phi1Error


@dataclass(frozen=True)
class Vocab:
    tokens: list[str]
    types: list[int]  # gguf.TokenType per token
    merges: list[str]
    eos: int
    bos: int
    pre: str  # llama.cpp's pre-tokenizer name
    add_bos: bool  # the tokenizer starts every text with its BOS token
    chat_template: str | None
    pad: int | None


def _byte_level(step: dict, regex: bool) -> bool:
    return (
        step.get("type") == "ByteLevel"
        and bool(step.get("use_regex", True)) is regex
        and not step.get("add_prefix_space", False)
    )


def pre_tokenizer_name(pre: dict | None) -> str | None:
    """llama.cpp's name for a tokenizer.json pre_tokenizer, or None when llama.cpp has none that splits alike."""
    if pre is None:
        return None
    steps = pre.get("pretokenizers") or [] if pre.get("type") == "Sequence" else [pre]
    if len(steps) == 1 and _byte_level(steps[0], regex=True):
        return "gpt-2"
    if len(steps) == 2 and steps[0].get("type") == "Digits" and steps[0].get("individual_digits"):
        return "smollm" if _byte_level(steps[1], regex=True) else None
    if len(steps) == 2 and steps[0].get("type") == "Split" and _byte_level(steps[1], regex=False):
        regex = (steps[0].get("pattern") or {}).get("Regex")
        if steps[0].get("behavior") in ("Isolated", "isolated") and not steps[0].get("invert"):
            return _split_names().get(regex)
    return None


def _split_names() -> dict[str, str]:
    """llama.cpp's pre-tokenizer names by their split regex (transformers' GGUF reader keeps the table)."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    names: dict[str, str] = {}
    for name, regex in GGUF_PRE_TOKENIZER_SPLITS.items():
        names.setdefault(regex, name)
    return names


def read_vocab(checkpoint: Path, vocab_size: int, eos_id: Any) -> Vocab:
    """The tokenizer of `checkpoint`, padded to the model's vocabulary size."""
    import gguf
    from transformers import AutoTokenizer

    path = checkpoint / "tokenizer.json"
    if not path.is_file():
        raise Phi1Error(f"{checkpoint}: no tokenizer.json: llama.cpp needs a fast (tokenizers) BPE tokenizer")
    spec = json.loads(path.read_text())
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise Phi1Error(f"{path}: a {model.get('type')} tokenizer: llama.cpp's gpt2 tokenizer is byte-level BPE")
    pre = pre_tokenizer_name(spec.get("pre_tokenizer"))
    if pre is None:
        raise Phi1Error(f"{path}: pre_tokenizer is not GPT-2's byte-level one, nor one llama.cpp knows by name: "
                        "llama.cpp would split text otherwise")  # fmt: skip
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
    tok = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    eos = eos_id[0] if isinstance(eos_id, list) else eos_id
    eos = eos if eos is not None else tok.eos_token_id if tok.eos_token_id is not None else special.get("<|endoftext|>")
    if eos is None:
        raise Phi1Error(f"{checkpoint}: no end-of-text token (config.json eos_token_id)")
    bos = tok.bos_token_id if tok.bos_token_id is not None else eos
    plain = tok("a", add_special_tokens=False)["input_ids"]
    add_bos = tok("a")["input_ids"] == [bos, *plain]
    pad = tok.pad_token_id if tok.pad_token_id is not None and tok.pad_token_id < vocab_size else None
    template = tok.chat_template if isinstance(tok.chat_template, str) else None
    return Vocab(tokens, types, merges, eos, bos, pre, add_bos, template, pad)


def write_tokenizer(writer: Any, vocab: Vocab) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    writer.add_eos_token_id(vocab.eos)
    writer.add_bos_token_id(vocab.bos)
    if vocab.pad is not None:
        writer.add_pad_token_id(vocab.pad)
    writer.add_add_bos_token(vocab.add_bos)  # phi-1 and SmolLM2 are trained without a leading BOS
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)  # llama.cpp's server and llama-cli chat in it
