"""`phi1 clean`: deduplicate every training source together and remove benchmark look-alikes; flag every
benchmark problem with how similar the remaining training data is to it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from phi1.cards import write_card
from phi1.clean.contamination import DETECTORS, Thresholds, detect
from phi1.clean.decontaminate import load_benchmark_problems
from phi1.clean.dedup import exact_duplicates, minhash_duplicates
from phi1.config import Config
from phi1.errors import Phi1Error
from phi1.precision import resolve
from phi1.progress import console
from phi1.rundir import Stage, read_shards, stage_key, write_shard
from phi1.sandbox import Sandbox

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
TABLE3_TAUS = (0.95, 0.9, 0.85, 0.8)  # the paper's Table 3


def _tau_column(tau: float) -> str:
    return f"similar_at_tau_{tau:.2f}".replace(".", "_")


SIMILARITY_SCHEMA = pa.schema(
    [
        ("benchmark", pa.string()),
        ("task_id", pa.string()),
        ("max_ast", pa.float64()),
        ("nearest_ast_id", pa.string()),
        ("max_cosine", pa.float64()),
        ("nearest_cosine_id", pa.string()),
        ("ngram_hits", pa.int64()),
        ("execution_twins", pa.int64()),
        ("similar_to_training", pa.bool_()),
        *[(_tau_column(t), pa.bool_()) for t in TABLE3_TAUS],
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
    stage = Stage(run_dir, "clean", stage_key({**cfg.result_fields(), "encoder": encoder_spec}, inputs.values()))
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

    problems = load_benchmark_problems(cfg.humaneval, cfg.mbpp, cfg.mbpp_path, cfg.extra_benchmarks)
    alive = [i for i in range(len(docs)) if reason[i] is None]
    with stage.timed("embedding_s"):
        doc_vecs, bench_vecs = _embeddings(run_dir, config, encoder_spec, docs, alive, problems)
        cos = doc_vecs @ bench_vecs.T if len(alive) and len(problems) else np.zeros((len(alive), len(problems)))
    thresholds = Thresholds(cfg.ngram_n, cfg.embed_threshold, cfg.ast_threshold, cfg.ast_min_nodes)
    with stage.timed("decontaminate_s"), _sandbox(config) as sandbox:
        # Over everything left after dedup: what is removed, and (the paper's Table 3) which problems the
        # unpruned data resembles, down to the smallest tau of the table.
        found = detect([texts[i] for i in alive], [docs[i]["kind"] for i in alive], problems, thresholds, sandbox,
                       cos, cfg.workers, ast_floor=min(TABLE3_TAUS))  # fmt: skip
    fired: dict[int, set[str]] = {}
    for (k, _), m in found.items():
        fired.setdefault(k, set()).update(m.detectors)
    for k, detectors in fired.items():
        if detectors:  # named after the first detector in DETECTORS' order that fired
            reason[alive[k]] = f"benchmark_{min(detectors, key=DETECTORS.index)}"

    kept = [i for i in range(len(docs)) if reason[i] is None]
    similarity = _similarity_table(problems, docs, alive, cos, found, cfg)

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
        precision=resolve(config.curate.bf16, config.curate.device).as_dict(),
        thresholds={
            "minhash_bands_rows": [cfg.minhash_bands, cfg.minhash_rows],
            "ngram_n": cfg.ngram_n,
            "embed": cfg.embed_threshold,
            "ast": cfg.ast_threshold,
            "similar": f"tau >= {cfg.ast_threshold} or an execution twin, against the unpruned data",
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
    problems: list, docs: list[dict[str, Any]], alive: list[int], cos: np.ndarray, found: dict, cfg: Any
) -> list[dict[str, Any]]:
    """Per benchmark problem, how close the unpruned training data (after dedup, before decontamination)
    comes: as the paper measured it for its Table 3, so that "similar" means "had a match", not "had a match
    just below the removal thresholds"."""
    best_ast: dict[int, tuple[float, int]] = {}
    ngram: dict[int, int] = {}
    twins: dict[int, int] = {}
    for (k, j), m in found.items():
        tau = m.scores.get("ast", 0.0)
        if tau > best_ast.get(j, (0.0, -1))[0]:
            best_ast[j] = (tau, alive[k])
        if "ngram" in m.detectors:
            ngram[j] = ngram.get(j, 0) + 1
        if "execution" in m.detectors:
            twins[j] = twins.get(j, 0) + 1
    table = []
    for j, p in enumerate(problems):
        tau, ast_doc = best_ast.get(j, (0.0, -1))
        if len(alive):
            k = int(cos[:, j].argmax())
            max_cos, cos_doc = float(cos[k, j]), alive[k]
        else:
            max_cos, cos_doc = 0.0, -1
        row = {
            "benchmark": p.benchmark,
            "task_id": p.task_id,
            "max_ast": round(tau, 4),
            "nearest_ast_id": docs[ast_doc]["id"] if ast_doc >= 0 else None,
            "max_cosine": round(max_cos, 4),
            "nearest_cosine_id": docs[cos_doc]["id"] if cos_doc >= 0 else None,
            "ngram_hits": ngram.get(j, 0),
            "execution_twins": twins.get(j, 0),
            "similar_to_training": bool(tau >= cfg.ast_threshold or twins.get(j, 0) > 0),
        }
        row.update({_tau_column(t): bool(tau >= t) for t in TABLE3_TAUS})
        table.append(row)
    return table


def _sandbox(config: Config) -> Any:
    if not config.clean.execution:
        return contextlib.nullcontext(None)
    return Sandbox(workers=config.clean.workers or Sandbox.default_workers(), mode=config.evaluate.sandbox)
