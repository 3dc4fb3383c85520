"""Selection: every file gets `edu_score` (the classifier's probability that it is educational); the
files kept are those over a threshold, the top fraction, or the best within a token budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phi1.cards import CardStats, write_card
from phi1.config import CurateConfig
from phi1.curate.classifier import edu_probability, load_model
from phi1.errors import Phi1Error
from phi1.rundir import Stage, as_stage, read_shards, write_shard

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("n_bytes", pa.int64()),
        ("edu_score", pa.float64()),
    ]
)

BYTES_PER_TOKEN = 3.5  # a rough figure for Python source under a code BPE


def keep_mask(scores: np.ndarray, sizes: np.ndarray, cfg: CurateConfig) -> np.ndarray:
    if cfg.keep == "threshold":
        return scores >= cfg.keep_threshold
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros(len(scores), dtype=bool)
    if cfg.keep == "top_fraction":
        mask[order[: round(cfg.keep_fraction * len(scores))]] = True
        return mask
    budget = cfg.token_budget or 0
    tokens = np.cumsum(sizes[order] / BYTES_PER_TOKEN)
    mask[order[tokens <= budget]] = True
    return mask


def select(
    run_dir: Path,
    cfg: CurateConfig,
    key: str | Stage,
    corpus_manifest: dict[str, Any],
    force: bool = False,
) -> dict[str, Any]:
    """Score every corpus shard from its embedding shard, decide the rule's cut on the scores alone, then
    copy the kept files shard by shard: memory holds one shard's texts and 16 bytes per file (score, size),
    never the corpus."""
    stage = as_stage(run_dir, "filtered", key)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, {}, force=True)
    shards = sorted((run_dir / "corpus").glob("data-*.parquet"))
    with stage.timed("score_s"):
        scores, sizes = _score_shards(run_dir, shards, cfg)
    doc_scores = np.concatenate(scores) if scores else np.zeros(0)
    all_sizes = np.concatenate(sizes) if sizes else np.zeros(0)
    mask = keep_mask(doc_scores, all_sizes, cfg)
    kept = int(mask.sum())
    card = CardStats()
    _write_kept(stage, shards, scores, np.split(mask, np.cumsum([len(x) for x in scores])[:-1]), card)
    hist, edges = np.histogram(doc_scores, bins=10, range=(0.0, 1.0))
    counts = corpus_manifest.get("counts", {})
    skipped = counts.get("skipped", {})
    funnel = {
        "read": counts.get("documents", 0) + sum(skipped.values()),
        "skipped": skipped,
        "scored": len(doc_scores),
        "kept": kept,
        "kept_bytes": int(all_sizes[mask].sum()),
        "kept_tokens_approx": int(all_sizes[mask].sum() / BYTES_PER_TOKEN),
    }
    manifest = stage.finish(
        counts=funnel,
        score_histogram={"edges": [round(e, 2) for e in edges.tolist()], "counts": hist.tolist()},
        rule={
            "keep": cfg.keep,
            "threshold": cfg.keep_threshold,
            "fraction": cfg.keep_fraction,
            "token_budget": cfg.token_budget,
        },
    )
    write_card(
        stage.path,
        "Curated code",
        "Files of the corpus the classifier rates as educational (`edu_score`, the probability of a teacher "
        f"score >= {cfg.score_threshold}), kept by `curate.keep = {cfg.keep}`.",
        card,
        manifest,
    )
    return manifest


def _score_shards(run_dir: Path, shards: list[Path], cfg: CurateConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(edu_score, size in bytes) of every file, per corpus shard; scores from the embedding shard of the same
    index."""
    model = load_model(run_dir)
    folder = run_dir / "embeddings"
    scores, sizes = [], []
    for index, shard in enumerate(shards):
        ids = np.load(folder / f"ids-{index:05d}.npy", allow_pickle=False)
        columns = pq.read_table(shard, columns=["id", "n_bytes"])
        corpus_ids = columns.column("id").to_numpy(zero_copy_only=False)
        sizes.append(np.asarray(columns.column("n_bytes").to_numpy(), np.float64))
        if len(ids) != len(corpus_ids) or not np.array_equal(ids.astype(str), corpus_ids.astype(str)):
            raise Phi1Error(f"{folder}: embeddings of shard {index} do not match {shard.name}: rerun with --force")
        vectors = np.load(folder / f"emb-{index:05d}.npy", mmap_mode="r")
        scores.append(edu_probability(model, np.asarray(vectors), cfg) if len(ids) else np.zeros(0))
    return scores, sizes


SHARD_ROWS = 5_000


def _write_kept(
    stage: Stage, shards: list[Path], scores: list[np.ndarray], masks: list[np.ndarray], card: CardStats
) -> None:
    """Copy the kept rows, in corpus order, into shards of SHARD_ROWS rows, each counted for the card."""
    pending: list[dict[str, Any]] = []
    written = 0

    def flush(rows: list[dict[str, Any]]) -> None:
        nonlocal written
        write_shard(stage.shard_path(written), rows, SCHEMA)
        card.add(rows)
        written += 1

    for shard, shard_scores, mask in zip(shards, scores, masks, strict=True):
        if not mask.any():
            continue
        rows = read_shards([shard], ["id", "text", "source", "n_bytes"])
        pending.extend({**r, "edu_score": float(s)} for r, s, m in zip(rows, shard_scores, mask, strict=True) if m)
        while len(pending) >= SHARD_ROWS:
            flush(pending[:SHARD_ROWS])
            pending = pending[SHARD_ROWS:]
    if pending or written == 0:
        flush(pending)
