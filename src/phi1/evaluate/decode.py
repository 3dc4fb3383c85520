"""Batched decoding that lets each row go as soon as it is finished and fills its place with the next prompt.

`model.generate` keeps every row of a batch until the last one stops: one answer that never closes its code
block keeps the whole batch decoding to `max_new_tokens`. On a CPU a decoding step costs nearly as much for 3
rows as for 32 (measured here: SmolLM2-135M, 2 cores, 0.11-0.16 s vs 0.19 s), so those long rows cost as much
as full batches. This loop is generate's greedy and top-p sampling over one KV cache, with
- finished rows dropped from the cache (`Cache.batch_select_indices`) and, once half the batch has gone, the
  next prompts prefilled and joined to it (the shorter cache padded on the left, masked);
- prompts prefilled a few thousand tokens a forward (`prefill_parts`), where a CPU runs fastest;
- the cache grown in place (`_GrowingLayer`), where transformers' DynamicLayer copies it at every step;
- for greedy decoding with few rows left, prompt-lookup drafts (`draft`) checked in the same forward: the
  drafted tokens the model agrees with are kept, the rest masked out of the cache.
A row's tokens are greedy's for its prompt alone: padding and rejected drafts are masked, as in any
left-padded batch (up to float summation order).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer


def next_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Greedy (temperature 0) or nucleus sampling over the last position's logits [rows, vocab]."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the most likely token always).
        drop = sorted_p.cumsum(-1) - sorted_p >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _Running:
    """The rows decoding together: their cache, attention mask, last cached positions, the token each feeds next,
    and the tokens each has produced since the last look (accepted draft tokens, then that next token)."""

    def __init__(self, cache: Any, mask: torch.Tensor, last: torch.Tensor, token: torch.Tensor, rows: list[int]):
        self.cache, self.mask, self.last, self.token, self.rows = cache, mask, last, token, rows
        self.produced: list[list[int]] = [[t] for t in token.tolist()]

    def keep(self, kept: list[int]) -> None:
        index = torch.tensor(kept, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.last, self.token = self.mask[index], self.last[index], self.token[index]
        self.rows = [self.rows[k] for k in kept]
        self.produced = [self.produced[k] for k in kept]

    def join(self, *others: _Running) -> None:
        """`others`' rows added after these: every cache brought to one length by padding on the left (masked),
        each layer's keys and values copied once into this cache's buffers."""
        parts = [self, *others]
        length = max(p.mask.size(1) for p in parts)
        for layers in zip(*(p.cache.layers for p in parts), strict=True):
            layers[0].hold(torch.cat([_left_pad(layer.keys, length) for layer in layers]),
                           torch.cat([_left_pad(layer.values, length) for layer in layers]))  # fmt: skip
        self.mask = torch.cat([_left_pad(p.mask, length) for p in parts])
        self.last = torch.cat([p.last for p in parts])
        self.token = torch.cat([p.token for p in parts])
        self.rows = [r for p in parts for r in p.rows]
        self.produced = [t for p in parts for t in p.produced]


def _left_pad(x: torch.Tensor, length: int) -> torch.Tensor:
    """Zeros before the sequence dimension's start (the last for a mask, the one before it for keys/values)."""
    dim = x.dim() - 1 if x.dim() == 2 else x.dim() - 2
    missing = length - x.size(dim)
    if missing == 0:
        return x
    pad = [0, 0] * (x.dim() - 1 - dim) + [missing, 0]
    return F.pad(x, pad)


def _joinable(cache: Any) -> bool:
    """Caches whose layers hold every position in plain key/value tensors (not a sliding window, not
    quantized) can be grown in place, padded, joined and given holes; others decode batch by batch, one token a
    step, as transformers keeps them."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) in (DynamicLayer, _GrowingLayer) for layer in layers)


def _growing(cache: Any) -> Any:
    """The cache with each plain layer replaced by a `_GrowingLayer` holding the same keys and values."""
    cache.layers = [layer if isinstance(layer, _GrowingLayer) else _GrowingLayer.holding(layer.keys, layer.values)
                    for layer in cache.layers]  # fmt: skip
    return cache


def prefill_parts(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Positions 0..n-1 of prompts of these lengths, cut into consecutive parts whose rows times longest prompt
    stay within `budget` tokens (one row at least; 0: one part). A CPU runs a prompt's forward fastest at a
    few thousand tokens: measured here (SmolLM2-135M, 2 cores), 64 HumanEval chat prompts in one forward ran at
    332 tokens/s and in forwards of 8 at 527 (the larger activations no longer fit the caches)."""
    parts: list[list[int]] = [[]]
    longest = 0
    for k, n in enumerate(lengths):
        if parts[-1] and budget and (len(parts[-1]) + 1) * max(longest, n) > budget:
            parts.append([])
            longest = 0
        parts[-1].append(k)
        longest = max(longest, n)
    return parts


class _GrowingLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views of buffers with room to grow: a new token is written
    in place, where DynamicLayer concatenates, copying the whole cache at every step. Measured here (135M
    model, 32 rows of 300 positions, 2 CPU cores): the copy was two thirds of a decoding step's time."""

    @classmethod
    def holding(cls, keys: torch.Tensor, values: torch.Tensor) -> _GrowingLayer:
        layer = cls()
        layer.lazy_initialization(keys, values)
        layer.hold(keys, values)
        return layer

    def hold(self, keys: torch.Tensor, values: torch.Tensor, room: int = 256) -> None:
        length = keys.size(-2)
        shape = (*keys.shape[:-2], length + room, keys.size(-1))
        self._k, self._v = keys.new_empty(shape), values.new_empty(shape)
        self._k[..., :length, :], self._v[..., :length, :] = keys, values
        self.keys, self.values = self._k[..., :length, :], self._v[..., :length, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.hold(key_states, value_states)
            return self.keys, self.values
        length, n = self.keys.size(-2), key_states.size(-2)
        if length + n > self._k.size(-2):
            self.hold(self.keys, self.values, room=max(256, length + n))  # doubles: amortized copies
        self._k[..., length : length + n, :] = key_states
        self._v[..., length : length + n, :] = value_states
        self.keys, self.values = self._k[..., : length + n, :], self._v[..., : length + n, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        length = self.keys.size(-2)
        self._k, self._v = self._k[indices], self._v[indices]
        self.keys, self.values = self._k[..., :length, :], self._v[..., :length, :]


def draft(seq: Sequence[int], k: int, longest: int = 3) -> list[int]:
    """Prompt lookup: the k tokens that followed the latest earlier occurrence of the sequence's last n tokens
    (n = `longest` down to 1), or none. An answer that restates its prompt's signature and docstring, or
    repeats itself, is mostly such copies."""
    if k <= 0 or len(seq) < 2:
        return []
    arr = np.asarray(seq)
    for n in range(min(longest, len(arr) - 1), 0, -1):
        tail = arr[-n:]
        hits = np.ones(len(arr) - n, dtype=bool)  # starts s < len - n: not the tail itself
        for j in range(n):
            hits &= arr[j : len(arr) - n + j] == tail[j]
        found = np.flatnonzero(hits)
        if found.size:
            s = int(found[-1]) + n
            return arr[s : s + k].tolist()
    return []


def decode(
    model: Any,
    prompts: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
    max_new_tokens: int,
    finished: Callable[[int, Sequence[int]], bool],
    eos_ids: set[int],
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    lookahead: int = 8,
    tokens_per_step: int = 32,
    prefill_tokens: int = 2048,
) -> Iterator[tuple[int, list[int]]]:
    """(prompt index, its new tokens) for every prompt, as each finishes. At most `batch_size` rows decode at
    once. A row ends at an end-of-sequence token (kept, as generate keeps it), when `finished(index, its
    tokens so far)` says so, or at `max_new_tokens`.

    Greedy decoding also checks up to `lookahead` drafted tokens per row in the same forward (prompt lookup,
    `draft`): the drafts that agree with the model's own argmax are kept with the token after them, the rest
    masked out of the cache, so the tokens are greedy's. Fewer rows, more drafts: a step feeds about
    `tokens_per_step` tokens, where a CPU's step still costs what reading the weights costs. Prompts are
    prefilled in forwards of at most `prefill_tokens` (rows x longest prompt; 0: a whole batch at once)."""
    device = next(model.parameters()).device
    # transformers 5 calls the cache `cache`; before, `past_key_values`.
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    pending = deque(range(len(prompts)))
    out: dict[int, list[int]] = {}
    running: _Running | None = None
    joinable = True

    def forward(indices: list[int]) -> _Running:
        width = max(len(prompts[i]) for i in indices)
        ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(indices), width), dtype=torch.long)
        for k, i in enumerate(indices):
            ids[k, width - len(prompts[i]) :] = torch.tensor(prompts[i], dtype=torch.long)
            mask[k, width - len(prompts[i]) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # each row counts from its first real token, as generate does
        step = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
        token = next_tokens(step.logits[:, -1], temperature, top_p, generator)
        return _Running(step["cache"] if "cache" in step else step["past_key_values"], mask, pos[:, -1], token,
                        list(indices))  # fmt: skip

    def prefill(indices: list[int]) -> _Running:
        """The rows' prompts through the model in parts of at most `prefill_tokens` (`prefill_parts`), their
        caches joined. A cache that cannot be joined is learnt from the first part: that part decodes alone,
        the other rows go back to the queue, and later batches are prefilled whole."""
        parts = prefill_parts([len(prompts[i]) for i in indices], prefill_tokens if joinable else 0)
        first = forward([indices[k] for k in parts[0]])
        if not _joinable(first.cache):
            pending.extendleft(reversed([indices[k] for part in parts[1:] for k in part]))
            return first
        first.cache = _growing(first.cache)
        if len(parts) > 1:  # one part: its cache is held already, joining nothing would copy it again
            first.join(*(forward([indices[k] for k in part]) for part in parts[1:]))
        return first

    while pending or running is not None:
        free = batch_size - (len(running.rows) if running else 0)
        if pending and (running is None or (joinable and free >= max(1, batch_size // 2))):
            fresh = prefill([pending.popleft() for _ in range(min(free, len(pending)))])
            for i in fresh.rows:
                out[i] = []
            if running is None:
                joinable = _joinable(fresh.cache)  # a joinable cache comes back growing (`prefill`)
                running = fresh
            else:
                running.join(fresh)  # reads fresh's keys and values once, into the running buffers
        kept = []
        for k, (row, produced) in enumerate(zip(running.rows, running.produced, strict=True)):
            done = False
            for tok in produced:
                out[row].append(tok)
                done = tok in eos_ids or len(out[row]) >= max_new_tokens or finished(row, out[row])
                if done:
                    yield row, out.pop(row)
                    break
            if not done:
                kept.append(k)
        if not kept:
            running = None
            continue
        if len(kept) < len(running.rows):
            running.keep(kept)
        _step(model, running, prompts, out, pad_id, cache_arg, temperature, top_p, generator,
              lookahead if temperature <= 0 and joinable else 0, tokens_per_step)  # fmt: skip


def _step(
    model: Any,
    running: _Running,
    prompts: Sequence[Sequence[int]],
    out: dict[int, list[int]],
    pad_id: int,
    cache_arg: str,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
    lookahead: int,
    tokens_per_step: int,
) -> None:
    """One forward of every running row: its next token, and (greedy) the drafts after it."""
    rows = len(running.rows)
    k = min(lookahead, max(0, tokens_per_step // rows - 1))
    drafts = [draft([*prompts[r], *out[r]], k) for r in running.rows] if k else [[] for _ in running.rows]
    width = max(len(d) for d in drafts)
    ids = torch.full((rows, 1 + width), pad_id, dtype=torch.long)
    ids[:, 0] = running.token
    new_mask = running.mask.new_zeros(rows, 1 + width)
    new_mask[:, 0] = 1
    for r, d in enumerate(drafts):
        ids[r, 1 : 1 + len(d)] = torch.tensor(d, dtype=torch.long)
        new_mask[r, 1 : 1 + len(d)] = 1  # a row's unused draft places are holes from the start
    ids = ids.to(running.mask.device)
    running.mask = torch.cat([running.mask, new_mask], dim=1)
    positions = running.last[:, None] + 1 + torch.arange(1 + width, device=running.mask.device)
    step = model(input_ids=ids, attention_mask=running.mask, position_ids=positions, use_cache=True,
                 **{cache_arg: running.cache})  # fmt: skip
    if width == 0:
        running.token = next_tokens(step.logits[:, -1], temperature, top_p, generator)
        running.last = running.last + 1
        running.produced = [[t] for t in running.token.tolist()]
        return
    best = step.logits.argmax(-1).tolist()  # [rows, 1 + width]: greedy's token after each place
    tokens, produced = [], []
    start = running.mask.size(1) - width  # the first draft place's column
    for r, d in enumerate(drafts):
        a = 0
        while a < len(d) and d[a] == best[r][a]:
            a += 1
        running.mask[r, start + a : start + width] = 0  # rejected drafts: out of every later step's view
        running.last[r] += 1 + a
        tokens.append(best[r][a])
        produced.append([*d[:a], best[r][a]])
    running.token = torch.tensor(tokens, device=running.mask.device)
    running.produced = produced
