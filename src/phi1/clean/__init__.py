"""`phi1 clean`: deduplicate every training source together and remove benchmark look-alikes; flag every
benchmark problem with how similar the remaining training data is to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from phi1.cards import write_card
from phi1.clean.decontaminate import (
    ast_matches,
    load_benchmark_problems,
    ngram_hits,
    ngram_index,
    sample_shapes,
)
from phi1.clean.dedup import exact_duplicates, minhash_duplicates
from phi1.config import Config
from phi1.errors import Phi1Error
from phi1.precision import resolve
from phi1.progress import console
from phi1.rundir import Stage, read_shards, stage_key, write_shard

SOURCES = (("exercises", "exercise"), ("textbook", "textbook"), ("filtered", "code"))  # order of preference
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("kind", pa.string()),
        ("source", pa.string()),
        ("prompt", pa.string()),
        ("solution", pa.string()),
        ("tests", pa.string()),
    ]
)
SIMILARITY_SCHEMA = pa.schema(
    [
        ("benchmark", pa.string()),
        ("task_id", pa.string()),
        ("max_ast", pa.float64()),
        ("nearest_ast_id", pa.string()),
        ("max_cosine", pa.float64()),
        ("nearest_cosine_id", pa.string()),
        ("ngram_hits", pa.int64()),
        ("similar_to_training", pa.bool_()),
    ]
)


def _inputs(run_dir: Path) -> dict[str, str]:
    keys = {}
    for folder, _ in SOURCES:
        m = Stage(run_dir, folder, "").manifest()
        if m is not None and m.get("status") == "complete":
            keys[folder] = m["cache_key"]
    return keys


def run_clean(run_dir: Path, config: Config, force: bool = False) -> dict[str, Any]:
    cfg = config.clean
    inputs = _inputs(run_dir)
    if not inputs:
        raise Phi1Error(f"{run_dir}: nothing to clean: run `phi1 curate` and/or `phi1 synth` first")
    encoder_spec = cfg.encoder or config.curate.encoder
    stage = Stage(run_dir, "clean", stage_key({**cfg.model_dump(), "encoder": encoder_spec}, inputs.values()))
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, inputs, force=True)

    docs: list[dict[str, Any]] = []
    for folder, kind in SOURCES:
        if folder not in inputs:
            continue
        for row in read_shards(sorted((run_dir / folder).glob("data-*.parquet"))):
            docs.append(
                {
                    "id": row["id"],
                    "text": row["text"],
                    "kind": kind,
                    "source": folder,
                    "prompt": row.get("prompt"),
                    "solution": row.get("solution"),
                    "tests": row.get("tests"),
                }
            )
    texts = [d["text"] for d in docs]
    reason: list[str | None] = [None] * len(docs)

    with stage.timed("dedup_s"), console.status("deduplicating"):
        for i in np.nonzero(exact_duplicates(texts))[0]:
            reason[i] = "exact_duplicate"
        alive = [i for i in range(len(docs)) if reason[i] is None]
        near, _ = minhash_duplicates(
            [texts[i] for i in alive], cfg.minhash_ngram, cfg.minhash_bands, cfg.minhash_rows, cfg.workers
        )
        for k in np.nonzero(near)[0]:
            reason[alive[k]] = "near_duplicate"

    notes: list[str] = []
    problems = load_benchmark_problems(cfg.humaneval, cfg.mbpp, cfg.mbpp_path, cfg.extra_benchmarks)
    alive = [i for i in range(len(docs)) if reason[i] is None]
    ngram_of: dict[int, set[int]] = {}
    with stage.timed("ngram_s"), console.status("decontaminating: n-grams"):
        index = ngram_index(problems, cfg.ngram_n)
        for i in alive:
            hits = ngram_hits(texts[i], index, cfg.ngram_n)
            if hits:
                ngram_of[i] = hits
                reason[i] = "benchmark_ngram"

    with stage.timed("embedding_s"):
        doc_vecs, bench_vecs = _embeddings(run_dir, config, encoder_spec, docs, alive, problems)
        cos = doc_vecs @ bench_vecs.T if len(alive) and len(problems) else np.zeros((len(alive), len(problems)))
        for k, i in enumerate(alive):
            if reason[i] is None and cos[k].max(initial=0.0) >= cfg.embed_threshold:
                reason[i] = "benchmark_embedding"

    with stage.timed("ast_s"), console.status("decontaminating: AST similarity"):
        owner: list[int] = []
        shapes: list[str] = []
        for i in alive:
            for shape in sample_shapes(texts[i], docs[i]["kind"], cfg.ast_min_nodes):
                owner.append(i)
                shapes.append(shape)
        bench_owner: list[int] = []
        bench_shapes: list[str] = []
        for j, p in enumerate(problems):
            for shape in sample_shapes(p.solution, "code", cfg.ast_min_nodes):
                bench_owner.append(j)
                bench_shapes.append(shape)
        floor = min(cfg.ast_threshold, cfg.similar_ast_threshold)
        matches = ast_matches(shapes, bench_shapes, floor, cfg.workers)
        for f, _, tau in matches:
            if tau >= cfg.ast_threshold and reason[owner[f]] is None:
                reason[owner[f]] = "benchmark_ast"

    kept = [i for i in range(len(docs)) if reason[i] is None]
    kept_set = set(kept)
    similarity = _similarity_table(problems, docs, kept_set, alive, cos, matches, owner, bench_owner, ngram_of, cfg)

    rows = [{k: docs[i][k] for k in ("id", "text", "kind", "source", "prompt", "solution", "tests")} for i in kept]
    shard_size = 5_000
    for s in range(0, max(1, len(rows)), shard_size):
        write_shard(stage.shard_path(s // shard_size), rows[s : s + shard_size], SCHEMA)
    write_shard(stage.path / "benchmark_similarity.parquet", similarity, SIMILARITY_SCHEMA)

    funnel: dict[str, dict[str, int]] = {}
    for i, d in enumerate(docs):
        f = funnel.setdefault(d["kind"], {"in": 0, "kept": 0})
        f["in"] += 1
        if reason[i] is None:
            f["kept"] += 1
        else:
            f[reason[i]] = f.get(reason[i], 0) + 1
    similar = {}
    for row in similarity:
        s = similar.setdefault(row["benchmark"], {"problems": 0, "similar_to_training": 0})
        s["problems"] += 1
        s["similar_to_training"] += int(row["similar_to_training"])
    manifest = stage.finish(
        counts={"in": len(docs), "kept": len(rows)},
        funnel=funnel,
        benchmarks=similar,
        notes=notes,
        precision=resolve(config.curate.bf16, config.curate.device).as_dict(),
        thresholds={
            "minhash_bands_rows": [cfg.minhash_bands, cfg.minhash_rows],
            "ngram_n": cfg.ngram_n,
            "embed": cfg.embed_threshold,
            "ast": cfg.ast_threshold,
            "similar_ast": cfg.similar_ast_threshold,
            "similar_embed": cfg.similar_embed_threshold,
        },
    )
    write_card(
        stage.path,
        "Clean training data",
        "Every training source together (exercises, textbook, curated code), deduplicated (exact and MinHash) "
        "and decontaminated against the benchmarks (13-gram overlap, embedding similarity, AST similarity). "
        "`kind` is code, textbook or exercise.",
        rows,
        manifest,
        ("kind",),
    )
    return manifest


def _embeddings(
    run_dir: Path, config: Config, spec: str, docs: list[dict[str, Any]], alive: list[int], problems: list
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors for the live documents and the benchmark problems; corpus files reuse curation's."""
    from phi1.curate.embed import encode, load_encoder

    if not alive or not problems:
        return np.zeros((len(alive), 1)), np.zeros((len(problems), 1))
    cur = config.curate
    known: dict[str, np.ndarray] = {}
    emb_dir = run_dir / "embeddings"
    if spec == cur.encoder and emb_dir.exists():
        for ids_path in sorted(emb_dir.glob("ids-*.npy")):
            vecs = np.load(ids_path.with_name(ids_path.name.replace("ids-", "emb-")))
            known.update(zip(np.load(ids_path).tolist(), vecs, strict=True))
    encoder = load_encoder(spec, cur.max_tokens, cur.device, cur.bf16)
    missing = [i for i in alive if docs[i]["id"] not in known]
    with console.status(f"decontaminating: embedding {len(missing)} samples and {len(problems)} problems"):
        if missing:
            known.update(
                zip([docs[i]["id"] for i in missing], encode(encoder, [docs[i]["text"] for i in missing]), strict=True)
            )
        bench = encode(
            encoder, [p.solution if p.prompt in p.solution else p.prompt + "\n" + p.solution for p in problems]
        )
    doc_vecs = np.stack([known[docs[i]["id"]] for i in alive])

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return unit(doc_vecs), unit(bench)


def _similarity_table(
    problems: list,
    docs: list[dict[str, Any]],
    kept: set[int],
    alive: list[int],
    cos: np.ndarray,
    matches: list,
    owner: list[int],
    bench_owner: list[int],
    ngram_of: dict[int, set[int]],
    cfg: Any,
) -> list[dict[str, Any]]:
    kept_rows = [k for k, i in enumerate(alive) if i in kept]
    best_ast: dict[int, tuple[float, int]] = {}
    for f, b, tau in matches:
        i, j = owner[f], bench_owner[b]
        if i in kept and tau > best_ast.get(j, (0.0, -1))[0]:
            best_ast[j] = (tau, i)
    table = []
    for j, p in enumerate(problems):
        tau, ast_doc = best_ast.get(j, (0.0, -1))
        if kept_rows:
            column = cos[kept_rows, j]
            k = int(column.argmax())
            max_cos, cos_doc = float(column[k]), alive[kept_rows[k]]
        else:
            max_cos, cos_doc = 0.0, -1
        hits = sum(1 for i, js in ngram_of.items() if j in js and i in kept)
        table.append(
            {
                "benchmark": p.benchmark,
                "task_id": p.task_id,
                "max_ast": round(tau, 4),
                "nearest_ast_id": docs[ast_doc]["id"] if ast_doc >= 0 else None,
                "max_cosine": round(max_cos, 4),
                "nearest_cosine_id": docs[cos_doc]["id"] if cos_doc >= 0 else None,
                "ngram_hits": hits,
                "similar_to_training": bool(
                    tau >= cfg.similar_ast_threshold or max_cos >= cfg.similar_embed_threshold or hits > 0
                ),
            }
        )
    return table
