"""The one owner of what a training step sees: token sequences, their positions and the labels (-100 where no
loss is taken).

Two packings of a finetuning set (`finetune.packing`):
- `paper`: the exercises joined by the end-of-text token and cut into sequences of `seq_len`, as phi-1 was
  trained; a sequence may begin inside an exercise, and attention crosses from one exercise to the next.
- `documents`: whole exercises packed one after another into rows of `seq_len`, the row's rest padded; the
  positions restart at every exercise, and from those transformers builds an attention mask that stops at its
  boundary (no attention across exercises, TRL #1230), so each exercise is learned as if it were alone. An
  exercise longer than a row is cut to it (counted in `truncated`).

Labels: the next token where the mask marks the solution (`loss_on: solution`) or everywhere (`all`); never
a padding token, never the first token of the next document. The mask comes from `phi1.prompt_format`, never
from the token ids, so an end-of-text token that is also the pad token is learned (TRL #1623).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phi1.errors import Phi1Error
from phi1.tokens import TokenShards

PACKINGS = ("paper", "documents")


@dataclass
class Batch:
    ids: np.ndarray  # [B, T] int64
    labels: np.ndarray  # [B, T - 1]: the target of ids[:, i] is labels[:, i], -100 where no loss is taken
    positions: np.ndarray | None  # [B, T]; None: 0 ... T-1 in every row


def targets(ids: np.ndarray, mask: np.ndarray | None, solution_only: bool) -> np.ndarray:
    """Next-token targets with -100 where no loss is taken (the prompt, when training on solutions)."""
    t = ids[:, 1:].copy()
    if solution_only and mask is not None:
        t[~mask[:, 1:]] = -100
    return t


class PackedDocuments:
    """A token set's whole documents packed into rows of seq_len, in the set's (shuffled) order: a row takes
    documents until the next does not fit."""

    def __init__(self, data: TokenShards, pad_id: int) -> None:
        if data.doc_starts is None:
            raise Phi1Error("finetune.packing documents: this token set has no document starts; rerun phi1 tokenize")
        self.data, self.seq_len, self.pad_id = data, data.seq_len, pad_id
        starts = data.doc_starts
        lengths = np.minimum(np.diff(starts), self.seq_len)
        self.truncated = int((np.diff(starts) > self.seq_len).sum())
        # Row r holds documents first[r] ... first[r + 1] - 1.
        first, used = [0], 0
        for i, n in enumerate(lengths.tolist()):
            if used + n > self.seq_len:
                first.append(i)
                used = 0
            used += n
        first.append(len(lengths))
        self.first = np.array(first, dtype=np.int64)
        self.starts, self.lengths = starts[:-1], lengths
        self.n_sequences = len(first) - 1
        self.vocab_size, self.eos_token_id = data.vocab_size, data.eos_token_id
        self.fill = float(lengths.sum()) / max(1, self.n_sequences * self.seq_len)  # share of real tokens

    def rows(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ids, solution mask, positions, real: False on padding) of the rows `indices`."""
        n, t = len(indices), self.seq_len
        ids = np.full((n, t), self.pad_id, dtype=np.int64)
        mask = np.zeros((n, t), dtype=bool)
        real = np.zeros((n, t), dtype=bool)
        positions = np.zeros((n, t), dtype=np.int64)
        tokens, solution = self.data.tokens, self.data.mask
        for b, r in enumerate(np.asarray(indices).tolist()):
            at = 0
            for d in range(self.first[r], self.first[r + 1]):
                lo, k = int(self.starts[d]), int(self.lengths[d])
                ids[b, at : at + k] = tokens[lo : lo + k]
                if solution is not None:
                    mask[b, at : at + k] = solution[lo : lo + k].astype(bool)
                real[b, at : at + k] = True
                positions[b, at : at + k] = np.arange(k)
                at += k
            positions[b, at:] = np.arange(t - at)  # the padding: a document of its own
        return ids, mask, positions, real


Data = TokenShards | PackedDocuments


def packed(data: TokenShards, packing: str, pad_id: int) -> Data:
    """The set as `packing` presents it to training."""
    if packing not in PACKINGS:
        raise Phi1Error(f"finetune.packing: {packing!r} is not one of {', '.join(PACKINGS)}")
    return PackedDocuments(data, pad_id) if packing == "documents" else data


def collate(data: Data, indices: np.ndarray, solution_only: bool) -> Batch:
    """The sequences `indices` of `data` with their positions and labels."""
    if isinstance(data, PackedDocuments):
        ids, mask, positions, real = data.rows(indices)
        labels = targets(ids, mask, solution_only)
        # Neither padding nor the first token of the next document is a target.
        labels[~real[:, 1:] | (positions[:, 1:] == 0)] = -100
        return Batch(ids, labels, positions)
    ids, mask = data.sequences(indices)
    return Batch(ids, targets(ids, mask, solution_only), None)
