"""A run's token sets (`<run dir>/tokens/`): `index.json` (sequence length, dtype, vocabulary, the sets) and one
flat token file per set (plus a loss mask where a set has one), memory-mapped by training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from phi1.errors import Phi1Error
from phi1.rundir import save_text


def read_token_index(tokens_dir: Path) -> dict[str, Any]:
    """A token folder's index.json: seq_len, dtype, vocab_size, eos_token_id and its sets (`files`)."""
    path = Path(tokens_dir) / "index.json"
    if not path.exists():
        raise Phi1Error(f"{tokens_dir}: no tokens (run `phi1 tokenize` first)")
    return json.loads(path.read_text())


def write_token_index(tokens_dir: Path, index: dict[str, Any]) -> None:
    save_text(Path(tokens_dir) / "index.json", json.dumps(index, indent=2))


def doc_starts_path(set_path: Path) -> Path:
    return set_path.with_name(set_path.name.replace(".bin", ".docs.bin"))


def write_doc_starts(set_path: Path, starts: np.ndarray) -> None:
    """Where each document of a token set begins (int64), and the set's end: documents are starts[i]:starts[i+1]."""
    tmp = doc_starts_path(set_path).with_suffix(".tmp")
    np.asarray(starts, dtype=np.int64).tofile(tmp)
    tmp.replace(doc_starts_path(set_path))


class TokenShards:
    """A memory-mapped token set: sequences of seq_len (+ a loss mask when the set has one)."""

    def __init__(self, tokens_dir: Path, name: str, seq_len: int | None = None) -> None:
        index = read_token_index(tokens_dir)
        if name not in index["files"]:
            raise Phi1Error(f"{tokens_dir}: no {name!r} token set (is the data for it empty?)")
        self.seq_len = seq_len or index["seq_len"]
        self.vocab_size = index["vocab_size"]
        self.eos_token_id = index["eos_token_id"]
        self.tokens = np.memmap(Path(tokens_dir) / f"{name}.bin", dtype=index["dtype"], mode="r")
        mask_path = Path(tokens_dir) / f"{name}.mask.bin"
        self.mask = np.memmap(mask_path, dtype=np.uint8, mode="r") if mask_path.exists() else None
        starts_path = doc_starts_path(Path(tokens_dir) / f"{name}.bin")
        # Where each document begins (finetuning sets): what `finetune.packing: documents` packs by.
        self.doc_starts = np.fromfile(starts_path, dtype=np.int64) if starts_path.exists() else None
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
