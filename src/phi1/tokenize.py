"""`phi1 tokenize`: a tokenizer (trained byte-level BPE, or any Hugging Face tokenizer from a local path)
and token shards packed as in the paper: documents joined by `<|endoftext|>` and cut into sequences of
`seq_len`, stored as flat memory-mapped arrays (uint16 when the vocabulary fits) with an index.

Two sets: `pretrain` (curated code + textbook, mixed by `tokenize.mix`) and `finetune` (the exercises,
with a mask marking the solution tokens, for a loss on solutions only). Each has a small validation split
held out by document. Document order is a seeded shuffle.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from phi1.config import Config, TokenizeConfig
from phi1.errors import Phi1Error
from phi1.progress import progress_bar
from phi1.rundir import Stage, read_shards, require_complete, stage_key

EOS = "<|endoftext|>"


def train_bpe(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE (GPT-2's pre-tokenizer keeps runs of whitespace together, so indentation becomes
    a few tokens) with `<|endoftext|>` as its one special token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS, pad_token=EOS, model_max_length=1_000_000
    )


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise Phi1Error(f"tokenize.tokenizer: cannot load a tokenizer from {path}: {exc}") from None
    if tok.eos_token_id is None:
        raise Phi1Error(f"tokenize.tokenizer: {path} has no end-of-text token")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _documents(run_dir: Path, kinds: set[str]) -> list[dict[str, Any]]:
    rows = read_shards(sorted((run_dir / "clean").glob("data-*.parquet")), ["id", "kind", "text", "prompt", "solution"])
    return [r for r in rows if r["kind"] in kinds]


def _split(docs: list[dict[str, Any]], val_fraction: float, seed: int) -> tuple[list, list]:
    docs = sorted(docs, key=lambda d: d["id"])
    random.Random(seed).shuffle(docs)
    n_val = min(len(docs) - 1, max(1, round(len(docs) * val_fraction))) if len(docs) > 1 else 0
    return docs[n_val:], docs[:n_val]


def _mix(docs: list[dict[str, Any]], weights: dict[str, float], seed: int) -> list[dict[str, Any]]:
    """Repeat each source `weight` times (the fraction by a seeded sample), then shuffle."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for kind in sorted({d["kind"] for d in docs}):
        part = [d for d in docs if d["kind"] == kind]
        weight = weights.get(kind, 1.0)
        whole, frac = int(weight), weight - int(weight)
        out += part * whole + rng.sample(part, round(frac * len(part)))
    rng.shuffle(out)
    return out


def _encode_to(
    path: Path, tok: Any, docs: list[dict[str, Any]], dtype: np.dtype, solution_mask: bool, label: str
) -> int:
    """Tokenize `docs` into `path` (and `path`.mask.bin: 1 on solution tokens), each document followed by EOS,
    written batch by batch: memory holds one batch's tokens, never the set's. The number of tokens."""
    eos = tok.eos_token_id
    batch = 256
    mask_path = path.with_name(path.name.replace(".bin", ".mask.bin"))
    tmp, mask_tmp = path.with_suffix(".tmp"), mask_path.with_suffix(".tmp")
    total = 0
    with (
        progress_bar(len(docs), f"tokenizing {label}", unit="docs") as advance,
        tmp.open("wb") as out,
        mask_tmp.open("wb") if solution_mask else contextlib.nullcontext() as mask_out,
    ):
        for start in range(0, len(docs), batch):
            part = docs[start : start + batch]
            if solution_mask:
                prompts = tok([d["prompt"] or "" for d in part], add_special_tokens=False)["input_ids"]
                sols = tok([d["solution"] or d["text"] for d in part], add_special_tokens=False)["input_ids"]
                rows = [[*p, *s, eos] for p, s in zip(prompts, sols, strict=True)]
                masks = [[0] * len(p) + [1] * (len(s) + 1) for p, s in zip(prompts, sols, strict=True)]
                np.array([m for row in masks for m in row], dtype=np.uint8).tofile(mask_out)
            else:
                rows = [[*ids, eos] for ids in tok([d["text"] for d in part], add_special_tokens=False)["input_ids"]]
            flat = np.array([t for row in rows for t in row], dtype=dtype)
            flat.tofile(out)
            total += flat.size
            advance(len(part))
    tmp.replace(path)
    if solution_mask:
        mask_tmp.replace(mask_path)
    return total


def tokenize(run_dir: Path, config: Config, force: bool = False) -> dict[str, Any]:
    cfg: TokenizeConfig = config.tokenize
    clean = require_complete(run_dir, "clean")
    tok_stage = Stage(
        run_dir,
        "tokenizer",
        stage_key(
            {
                "tokenizer": cfg.tokenizer,
                "vocab_size": cfg.vocab_size,
                "sample": cfg.train_sample_bytes,
                "seed": config.seed,
            },
            [clean["cache_key"]],
        ),
    )
    stage = Stage(run_dir, "tokens", stage_key(cfg, [clean["cache_key"], tok_stage.key]))
    if stage.is_complete() and tok_stage.is_complete() and not force:
        return stage.manifest() or {}

    pre_docs = _documents(run_dir, {"code", "textbook"})
    ft_docs = _documents(run_dir, {"exercise"})
    if not pre_docs and not ft_docs:
        raise Phi1Error(f"{run_dir / 'clean'}: no documents to tokenize")

    if not tok_stage.is_complete() or force:
        tok_stage.begin(
            {"tokenizer": cfg.tokenizer, "vocab_size": cfg.vocab_size}, {"clean": clean["cache_key"]}, force=True
        )
        with tok_stage.timed("train_s"):
            if cfg.tokenizer == "train":
                sample, size = [], 0
                for d in sorted(pre_docs + ft_docs, key=lambda d: d["id"]):
                    sample.append(d["text"])
                    size += len(d["text"])
                    if size >= cfg.train_sample_bytes:
                        break
                tok = train_bpe(sample, cfg.vocab_size)
            else:
                tok = load_tokenizer(cfg.tokenizer)
        tok.save_pretrained(tok_stage.path)
        tok_stage.finish(vocab_size=len(tok), eos_token_id=tok.eos_token_id, source=cfg.tokenizer)
    tok = load_tokenizer(tok_stage.path)
    vocab = len(tok)
    dtype = np.dtype(np.uint16 if vocab <= 65536 else np.uint32)

    stage.begin(cfg, {"clean": clean["cache_key"], "tokenizer": tok_stage.key}, force=True)
    files: dict[str, Any] = {}
    pre_train, pre_val = _split(pre_docs, cfg.val_fraction, config.seed)
    ft_train, ft_val = _split(ft_docs, cfg.val_fraction, config.seed)
    sets = [
        ("pretrain", _mix(pre_train, cfg.mix, config.seed), False),
        ("pretrain_val", pre_val, False),
        ("finetune", ft_train, True),
        ("finetune_val", ft_val, True),
    ]
    with stage.timed("tokenize_s"):
        for name, docs, with_mask in sets:
            if not docs:
                continue
            n_tokens = _encode_to(stage.path / f"{name}.bin", tok, docs, dtype, with_mask, name)
            files[name] = {
                "tokens": n_tokens,
                "documents": len(docs),
                "sequences": n_tokens // cfg.seq_len,
                "by_kind": {k: sum(1 for d in docs if d["kind"] == k) for k in {d["kind"] for d in docs}},
            }
    index = {
        "seq_len": cfg.seq_len,
        "dtype": dtype.name,
        "vocab_size": vocab,
        "eos_token_id": tok.eos_token_id,
        "files": files,
    }
    (stage.path / "index.json").write_text(json.dumps(index, indent=2))
    return stage.finish(counts={k: v["tokens"] for k, v in files.items()}, index=index, mix=cfg.mix)


class TokenShards:
    """A memory-mapped token set: sequences of seq_len (+ a loss mask when the set has one)."""

    def __init__(self, tokens_dir: Path, name: str, seq_len: int | None = None) -> None:
        index_path = Path(tokens_dir) / "index.json"
        if not index_path.exists():
            raise Phi1Error(f"{tokens_dir}: no tokens (run `phi1 tokenize` first)")
        index = json.loads(index_path.read_text())
        if name not in index["files"]:
            raise Phi1Error(f"{tokens_dir}: no {name!r} token set (is the data for it empty?)")
        self.seq_len = seq_len or index["seq_len"]
        self.vocab_size = index["vocab_size"]
        self.eos_token_id = index["eos_token_id"]
        self.tokens = np.memmap(Path(tokens_dir) / f"{name}.bin", dtype=index["dtype"], mode="r")
        mask_path = Path(tokens_dir) / f"{name}.mask.bin"
        self.mask = np.memmap(mask_path, dtype=np.uint8, mode="r") if mask_path.exists() else None
        self.n_sequences = len(self.tokens) // self.seq_len
        if self.n_sequences == 0:
            raise Phi1Error(
                f"{tokens_dir}/{name}.bin: {len(self.tokens)} tokens, fewer than one sequence of "
                f"{self.seq_len}; lower tokenize.seq_len or add data"
            )

    def sequences(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        starts = np.asarray(indices) * self.seq_len
        ids = np.stack([self.tokens[s : s + self.seq_len] for s in starts]).astype(np.int64)
        mask = None if self.mask is None else np.stack([self.mask[s : s + self.seq_len] for s in starts]).astype(bool)
        return ids, mask
