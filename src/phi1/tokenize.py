"""`phi1 tokenize`: a tokenizer (trained byte-level BPE, or any Hugging Face tokenizer from a local path)
and token shards packed as in the paper: documents joined by `<|endoftext|>` and cut into sequences of
`seq_len`, stored as flat memory-mapped arrays (uint16 when the vocabulary fits) with an index.

Two sets: `pretrain` (curated code + textbook, mixed by `tokenize.mix`) and `finetune` (the exercises in
`finetune.format`, with a mask marking the solution tokens for a loss on solutions only, and where each
exercise begins, for `finetune.packing: documents`). Each has a small validation split held out by document.
Document order is a seeded shuffle. With `model.base`, the base model's tokenizer is the run's.

In bounded memory at any scale: each clean shard is tokenized on its own (on any executor) into a token file;
the sets are then assembled from those files in shuffled order. Memory holds a few numbers per document
(shard, row, kind, size, shuffle key), never the texts or the tokens of the whole set.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from phi1.config import Config, TokenizeConfig
from phi1.errors import Phi1Error
from phi1.executor import map_shards
from phi1.progress import progress_bar
from phi1.prompt_format import Format, encode_many, resolve_format
from phi1.rundir import open_step
from phi1.tokens import TokenShards, read_token_index, write_doc_starts, write_token_index

# The token sets themselves are phi1.tokens'; tokenize writes them, and its callers may read them from here.
__all__ = ["TokenShards", "encode_to", "held_out_ids", "load_tokenizer", "read_token_index", "tokenize",
           "train_bpe", "write_token_index"]  # fmt: skip

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


def _order_key(seed: int, doc_id: str, salt: str = "") -> int:
    """A seeded pseudo-random 64-bit key of a document: sorting by it is a seeded shuffle that needs no
    list of the documents, only their keys (8 bytes each)."""
    raw = hashlib.blake2b(f"{seed}:{salt}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "little")


@dataclass
class Catalogue:
    """Every clean document as numbers: shard, row, kind, size and shuffle key (no texts)."""

    shards: list[Path]
    shard: np.ndarray
    row: np.ndarray
    kind: np.ndarray  # index into KINDS
    n_bytes: np.ndarray
    key: np.ndarray


KINDS = ("code", "textbook", "exercise")


def catalogue(run_dir: Path, seed: int) -> Catalogue:
    shards = sorted((run_dir / "clean").glob("data-*.parquet"))
    parts: list[tuple[np.ndarray, ...]] = []
    for k, path in enumerate(shards):
        table = pq.read_table(path, columns=["id", "kind", "text"])
        ids = table.column("id").to_pylist()
        kinds = np.array([KINDS.index(x) for x in table.column("kind").to_pylist()], dtype=np.int8)
        sizes = pc.binary_length(table.column("text").cast(pa.binary())).to_numpy(zero_copy_only=False)
        keys = np.array([_order_key(seed, i) for i in ids], dtype=np.uint64)
        parts.append((np.full(len(ids), k, dtype=np.int32), np.arange(len(ids), dtype=np.int32), kinds, sizes, keys))
        del table
    cols = [np.concatenate([p[c] for p in parts]) if parts else np.zeros(0) for c in range(5)]
    return Catalogue(shards, *cols)


def split_docs(cat: Catalogue, kinds: set[str], val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) document numbers of the given kinds: validation is the `val_fraction` (at least one,
    never all) with the smallest keys, i.e. a seeded sample held out by document."""
    docs = np.flatnonzero(np.isin(cat.kind, [KINDS.index(k) for k in kinds]))
    n = len(docs)
    n_val = min(n - 1, max(1, round(n * val_fraction))) if n > 1 else 0
    by_key = docs[np.argsort(cat.key[docs], kind="stable")]
    return np.sort(by_key[n_val:]), np.sort(by_key[:n_val])


def held_out_ids(run_dir: Path, kinds: set[str], val_fraction: float, seed: int) -> set[str]:
    """The ids of the documents `phi1 tokenize` holds out for validation."""
    cat = catalogue(run_dir, seed)
    _, val = split_docs(cat, kinds, val_fraction)
    return set(_column_of(cat, val, "id"))


def _column_of(cat: Catalogue, docs: np.ndarray, column: str) -> list[Any]:
    """One column's values for the documents (in shard order), reading only their rows of each shard."""
    docs = np.sort(docs)
    values: list[Any] = []
    for k, path in enumerate(cat.shards):
        rows = cat.row[docs[cat.shard[docs] == k]]
        if len(rows):
            values += pq.read_table(path, columns=[column]).column(column).take(rows).to_pylist()
    return values


def mix_docs(cat: Catalogue, docs: np.ndarray, weights: dict[str, float], seed: int) -> np.ndarray:
    """Each source repeated `weight` times (the fraction: a seeded sample), in a seeded shuffle: an array of
    document numbers, a repeated document once per copy."""
    copies: list[np.ndarray] = []
    salts: list[np.ndarray] = []
    for code, kind in enumerate(KINDS):
        part = docs[cat.kind[docs] == code]
        if not len(part):
            continue
        weight = weights.get(kind, 1.0)
        whole, frac = int(weight), weight - int(weight)
        for c in range(whole):
            copies.append(part)
            salts.append(np.full(len(part), c))
        n_frac = round(frac * len(part))
        if n_frac:
            sample_keys = np.array([_mix(int(k), 1 + whole) for k in cat.key[part]], dtype=np.uint64)
            copies.append(np.sort(part[np.argsort(sample_keys, kind="stable")[:n_frac]]))
            salts.append(np.full(n_frac, whole))
    if not copies:
        return np.zeros(0, dtype=np.int64)
    out, salt = np.concatenate(copies), np.concatenate(salts)
    order_keys = np.array([_mix(int(cat.key[d]), int(c)) for d, c in zip(out, salt, strict=True)], dtype=np.uint64)
    return out[np.lexsort((out, order_keys))]


def _mix(key: int, salt: int) -> int:
    """Another seeded key from a document's key: one per copy, so that copies land apart."""
    raw = hashlib.blake2b(key.to_bytes(8, "little") + salt.to_bytes(8, "little"), digest_size=8).digest()
    return int.from_bytes(raw, "little")


@dataclass(frozen=True)
class ShardJob:
    path: str
    tokenizer: str
    out: str  # tokens of every row, each followed by EOS; exercises: prompt then solution, and a .mask
    dtype: str
    exercise_format: Format = "completion"


@lru_cache(maxsize=1)
def _cached_tokenizer(path: str) -> Any:
    return load_tokenizer(path)


def tokenize_shard(job: ShardJob) -> np.ndarray:
    """Tokenize one clean shard into `job.out` (and its .mask: 1 on solution tokens, exercises only); the
    number of tokens of each row."""
    tok = _cached_tokenizer(job.tokenizer)
    table = pq.read_table(job.path, columns=["kind", "text", "prompt", "solution"])
    docs = table.to_pylist()
    del table
    lengths = np.zeros(len(docs), dtype=np.int64)
    out, mask_path = Path(job.out), Path(job.out).with_suffix(".mask")
    with_mask = any(d["kind"] == "exercise" for d in docs)  # clean's shards hold one source each
    with out.open("wb") as f_tok, mask_path.open("wb") if with_mask else contextlib.nullcontext() as f_mask:
        for start in range(0, len(docs), 256):
            part = docs[start : start + 256]
            rows, masks = _encode_rows(tok, part, job.exercise_format)
            lengths[start : start + len(part)] = [len(ids) for ids in rows]
            np.array([t for ids in rows for t in ids], dtype=job.dtype).tofile(f_tok)
            if with_mask:
                np.array([x for m in masks for x in m], dtype=np.uint8).tofile(f_mask)
    return lengths


def _encode_rows(tok: Any, part: list[dict[str, Any]], fmt: Format) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of each row followed by EOS, and its solution mask: exercises in the finetuning format."""
    rows: list[list[int]] = [[] for _ in part]
    masks: list[list[int]] = [[] for _ in part]
    ex = [i for i, d in enumerate(part) if d["kind"] == "exercise"]
    other = [i for i, d in enumerate(part) if d["kind"] != "exercise"]
    if ex:
        for i, ids, mask in zip(ex, *_encode_exercises(tok, [part[i] for i in ex], fmt), strict=True):
            rows[i], masks[i] = ids, mask
    if other:
        for i, ids, mask in zip(other, *_encode_texts(tok, [part[i] for i in other]), strict=True):
            rows[i], masks[i] = ids, mask
    return rows, masks


def _encode_exercises(tok: Any, part: list[dict[str, Any]], fmt: Format) -> tuple[list[list[int]], list[list[int]]]:
    """An exercise as `phi1.prompt_format` writes it: the loss mask on its solution and what ends it."""
    prompts = [d["prompt"] or "" for d in part]
    return encode_many(tok, prompts, [d["solution"] or d["text"] for d in part], fmt)


def _encode_texts(tok: Any, part: list[dict[str, Any]]) -> tuple[list[list[int]], list[list[int]]]:
    rows = [[*ids, tok.eos_token_id] for ids in tok([d["text"] for d in part], add_special_tokens=False)["input_ids"]]
    return rows, [[0] * len(r) for r in rows]


def _assemble(
    path: Path,
    cat: Catalogue,
    docs: np.ndarray,
    parts: list[Path],
    offsets: list[np.ndarray],
    dtype: np.dtype,
    with_mask: bool,
) -> int:
    """Copy the documents' tokens, in the order given, from the shards' token files into one set file."""
    tok_maps = [np.memmap(p, dtype=dtype, mode="r") if p.stat().st_size else np.zeros(0, dtype) for p in parts]
    mask_maps = [
        np.memmap(p.with_suffix(".mask"), dtype=np.uint8, mode="r")
        if with_mask and p.with_suffix(".mask").exists() and p.stat().st_size
        else np.zeros(0, np.uint8)
        for p in parts
    ]
    tmp = path.with_suffix(".tmp")
    mask_path = path.with_name(path.name.replace(".bin", ".mask.bin"))
    mask_tmp = mask_path.with_suffix(".tmp")
    total = 0
    starts = np.zeros(len(docs) + 1, dtype=np.int64)  # where each document begins in the set, and the end
    with tmp.open("wb") as out, mask_tmp.open("wb") if with_mask else contextlib.nullcontext() as mask_out:
        for start in range(0, len(docs), 4096):
            chunk = docs[start : start + 4096]
            pieces, mask_pieces = [], []
            for j, d in enumerate(chunk.tolist()):
                k, r = int(cat.shard[d]), int(cat.row[d])
                lo, hi = offsets[k][r], offsets[k][r + 1]
                starts[start + j + 1] = starts[start + j] + (hi - lo)
                pieces.append(tok_maps[k][lo:hi])
                if with_mask:
                    mask_pieces.append(mask_maps[k][lo:hi])
            block = np.concatenate(pieces) if pieces else np.zeros(0, dtype)
            block.tofile(out)
            total += block.size
            if with_mask:
                (np.concatenate(mask_pieces) if mask_pieces else np.zeros(0, np.uint8)).tofile(mask_out)
    tmp.replace(path)
    if with_mask:
        mask_tmp.replace(mask_path)
        write_doc_starts(path, starts)
    return total


def encode_to(
    path: Path, tok: Any, docs: list[dict[str, Any]], dtype: np.dtype, exercise_format: Format | None, label: str
) -> int:
    """Tokenize `docs` into `path`, each document followed by EOS, written batch by batch: memory holds one
    batch's tokens, never the set's. With `exercise_format` they are exercises in that format, with
    `path`.mask.bin (1 on solution tokens) and `path`.docs.bin (where each begins). The number of tokens."""
    solution_mask = exercise_format is not None
    lengths: list[int] = []
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
            rows, masks = _encode_exercises(tok, part, exercise_format) if solution_mask else _encode_texts(tok, part)
            lengths += [len(r) for r in rows]
            if solution_mask:
                np.array([m for row in masks for m in row], dtype=np.uint8).tofile(mask_out)
            flat = np.array([t for row in rows for t in row], dtype=dtype)
            flat.tofile(out)
            total += flat.size
            advance(len(part))
    tmp.replace(path)
    if solution_mask:
        mask_tmp.replace(mask_path)
        write_doc_starts(path, np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]))
    return total


def run_tokenizer(config: Config) -> Any:
    """The tokenizer a run names that is not trained here: the base model's, or tokenize.tokenizer's."""
    if config.model.base is not None:
        from phi1.base_model import resolve

        return load_tokenizer(resolve(config.model.base))
    return load_tokenizer(config.tokenize.tokenizer)


def tokenize(run_dir: Path, config: Config, force: bool = False) -> dict[str, Any]:
    cfg: TokenizeConfig = config.tokenize
    if config.model.base is not None and cfg.tokenizer != "train":
        raise Phi1Error("tokenize.tokenizer: model.base gives the run its tokenizer; leave tokenize.tokenizer unset")
    tok_stage = open_step(run_dir, "tokenizer", config)
    cat = None
    if not tok_stage.is_complete() or force:
        cat = _catalogue(run_dir, config.seed)
        source = config.model.base or cfg.tokenizer
        tok_stage.begin({"tokenizer": source, "vocab_size": cfg.vocab_size}, {}, force=True)
        with tok_stage.timed("train_s"):
            if cfg.tokenizer == "train" and config.model.base is None:
                tok = train_bpe(_bpe_sample(cat, cfg.train_sample_bytes), cfg.vocab_size)
            else:
                tok = run_tokenizer(config)
        tok.save_pretrained(tok_stage.path)
        tok_stage.finish(vocab_size=len(tok), eos_token_id=tok.eos_token_id, source=source)
    stage = open_step(run_dir, "tokens", config)  # its key holds the tokenizer's, now complete
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    cat = cat or _catalogue(run_dir, config.seed)
    tok = load_tokenizer(tok_stage.path)
    vocab = len(tok)
    dtype = np.dtype(np.uint16 if vocab <= 65536 else np.uint32)
    exercise_format = resolve_format(config.finetune.format, tok)

    stage.begin(cfg, {}, force=True)
    work = stage.path / "work"
    work.mkdir(exist_ok=True)
    with stage.timed("tokenize_s"):
        jobs = [
            ShardJob(str(p), str(tok_stage.path), str(work / f"shard-{k:05d}.bin"), dtype.name, exercise_format)
            for k, p in enumerate(cat.shards)
        ]
        lengths = list(map_shards(tokenize_shard, jobs, config.executor, "tokenizing"))
        offsets = [np.concatenate([[0], np.cumsum(n)]) for n in lengths]
        pre_train, pre_val = split_docs(cat, {"code", "textbook"}, cfg.val_fraction)
        ft_train, ft_val = split_docs(cat, {"exercise"}, cfg.val_fraction)
        sets = [
            ("pretrain", mix_docs(cat, pre_train, cfg.mix, config.seed), False),
            ("pretrain_val", _shuffled(cat, pre_val), False),
            ("finetune", _shuffled(cat, ft_train), True),
            ("finetune_val", _shuffled(cat, ft_val), True),
        ]
        files: dict[str, Any] = {}
        parts = [Path(j.out) for j in jobs]
        for name, docs, with_mask in sets:
            if not len(docs):
                continue
            n_tokens = _assemble(stage.path / f"{name}.bin", cat, docs, parts, offsets, dtype, with_mask)
            kinds = np.bincount(cat.kind[docs], minlength=len(KINDS))
            files[name] = {
                "tokens": n_tokens,
                "documents": len(docs),
                "sequences": n_tokens // cfg.seq_len,
                "by_kind": {KINDS[c]: int(n) for c, n in enumerate(kinds) if n},
            }
    shutil.rmtree(work, ignore_errors=True)
    index = {
        "seq_len": cfg.seq_len,
        "dtype": dtype.name,
        "vocab_size": vocab,
        "eos_token_id": tok.eos_token_id,
        "exercise_format": exercise_format,
        "files": files,
    }
    write_token_index(stage.path, index)
    return stage.finish(
        counts={k: v["tokens"] for k, v in files.items()}, index=index, mix=cfg.mix, executor=config.executor.kind
    )


def _catalogue(run_dir: Path, seed: int) -> Catalogue:
    cat = catalogue(run_dir, seed)
    if not len(cat.kind):
        raise Phi1Error(f"{run_dir / 'clean'}: no documents to tokenize")
    return cat


def _shuffled(cat: Catalogue, docs: np.ndarray) -> np.ndarray:
    return docs[np.lexsort((docs, cat.key[docs]))]


def _bpe_sample(cat: Catalogue, budget: int) -> list[str]:
    """Texts for training the BPE: documents in key order (a seeded sample) until `budget` bytes."""
    order = np.argsort(cat.key, kind="stable")
    n = int(np.searchsorted(np.cumsum(cat.n_bytes[order]), budget)) + 1
    return _column_of(cat, order[:n], "text")
