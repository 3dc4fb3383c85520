"""Selection: every file gets `edu_score` (the classifier's probability that it is educational); the
files kept are those over a threshold, the top fraction, or the best within a token budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from phi1.cards import write_card
from phi1.config import CurateConfig
from phi1.curate.classifier import edu_probability, load_model
from phi1.rundir import Stage, read_shards, stage_key, write_shard

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
    ids: np.ndarray,
    vectors: np.ndarray,
    keys: dict[str, str],
    corpus_manifest: dict[str, Any],
    force: bool = False,
) -> dict[str, Any]:
    fields = {k: getattr(cfg, k) for k in ("keep", "keep_threshold", "keep_fraction", "token_budget")}
    stage = Stage(run_dir, "filtered", stage_key(fields, keys.values()))
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, keys, force=True)
    with stage.timed("score_s"):
        scores = edu_probability(load_model(run_dir), vectors, cfg)
    score_of = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    rows = list(read_shards(sorted((run_dir / "corpus").glob("data-*.parquet")), ["id", "text", "source", "n_bytes"]))
    doc_scores = np.array([score_of[r["id"]] for r in rows])
    sizes = np.array([r["n_bytes"] for r in rows], dtype=np.float64)
    mask = keep_mask(doc_scores, sizes, cfg)
    kept = [{**r, "edu_score": float(s)} for r, s, m in zip(rows, doc_scores, mask, strict=True) if m]
    shard_size = 5_000
    for i in range(0, max(1, len(kept)), shard_size):
        write_shard(stage.shard_path(i // shard_size), kept[i : i + shard_size], SCHEMA)
    hist, edges = np.histogram(doc_scores, bins=10, range=(0.0, 1.0))
    counts = corpus_manifest.get("counts", {})
    skipped = counts.get("skipped", {})
    funnel = {
        "read": counts.get("documents", 0) + sum(skipped.values()),
        "skipped": skipped,
        "scored": len(rows),
        "kept": len(kept),
        "kept_bytes": int(sizes[mask].sum()),
        "kept_tokens_approx": int(sizes[mask].sum() / BYTES_PER_TOKEN),
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
        kept,
        manifest,
    )
    return manifest
