"""`phi1 clean`: deduplicate every training source together and remove benchmark look-alikes; flag every
benchmark problem with how similar the remaining training data is to it.

Public API (what other packages may import): `run_clean`; `phi1.clean.decontam.run_decontam` (the
command); `phi1.clean.driver` (`detect_shards`, `detect_texts`) and `phi1.clean.detectors` (`Thresholds`,
`TYPES`, `Detector`) for decontamination anywhere; `phi1.clean.problems.load_benchmark_problems`.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phi1.cards import CardStats, write_card
from phi1.clean.dedup import duplicate_of, first_copies
from phi1.clean.detectors import Thresholds, names
from phi1.clean.detectors.embedding import Vectors
from phi1.clean.detectors.llm_judge import Judge
from phi1.clean.driver import Found, Shard, detect_shards
from phi1.clean.shards import Benchmarks, problems_of, sign_jobs, sign_shard
from phi1.config import Config
from phi1.errors import Phi1Error
from phi1.executor import map_shards
from phi1.precision import resolve
from phi1.progress import console
from phi1.rundir import Stage, open_step, write_shard
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


# Every (sample, problem, detector) the driver fired on, as `phi1 decontam` writes them to flags.jsonl.
FLAGS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("benchmark", pa.string()),
        ("task_id", pa.string()),
        ("detector", pa.string()),
        ("score", pa.float64()),
    ]
)
REASONS = ("", "exact_duplicate", "near_duplicate", *(f"benchmark_{d}" for d in names()))
REMOVED_SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("reason", pa.string()), ("of", pa.string())])


def run_clean(run_dir: Path, config: Config, force: bool = False, teacher: Any = None) -> dict[str, Any]:
    """Shard by shard, in bounded memory: hashes -> buckets -> matches -> filter (see `phi1.clean.dedup`)."""
    cfg = config.clean
    stage = open_step(run_dir, "clean", config)  # its sources: whichever of them are complete
    inputs = {folder for folder, _ in SOURCES if stage.parts and stage.parts.inputs.get(folder)}
    if not inputs:
        raise Phi1Error(f"{run_dir}: nothing to clean: run `phi1 curate` and/or `phi1 synth` first")
    encoder_spec = cfg.encoder or config.curate.encoder
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, {}, force=True)
    work = stage.path / "work"
    work.mkdir(exist_ok=True)
    shards = [
        Shard(path, folder, kind)
        for folder, kind in SOURCES
        if folder in inputs
        for path in sorted((run_dir / folder).glob("data-*.parquet"))
    ]

    with stage.timed("dedup_s"):
        reason, dup_of, kept_by_check = _deduplicate(shards, work, cfg, config.executor)
    problems = list(problems_of(_benchmarks(cfg)))
    with stage.timed("decontaminate_s"):
        judge = Judge(teacher, cfg.llm_judge_k) if cfg.llm_judge and teacher is not None else None
        found = _decontaminate(run_dir, config, encoder_spec, shards, reason, problems, judge)
    for doc, (d, _) in found.cause.items():  # removed for the first detector that fired
        if reason[doc] == 0:
            reason[doc] = REASONS.index(f"benchmark_{names()[d]}")
    with stage.timed("filter_s"):
        card, removed = _write_outputs(stage, shards, reason, dup_of, found.cause, problems)
    named = {d for _, d in found.best_ast.values()} | set(found.max_cos_doc if found.max_cos_doc is not None else [])
    similarity = _similarity_table(
        problems, found, cfg.ast_threshold, _ids_of(shards, {int(d) for d in named if d >= 0})
    )
    write_shard(stage.path / "benchmark_similarity.parquet", similarity, SIMILARITY_SCHEMA)
    write_shard(stage.path / "benchmark_flags.parquet", _flags(shards, found, problems), FLAGS_SCHEMA)
    shutil.rmtree(work, ignore_errors=True)

    funnel: dict[str, dict[str, int]] = {}
    for shard in shards:
        codes = np.bincount(reason[shard.offset : shard.offset + shard.size], minlength=len(REASONS))
        f = funnel.setdefault(shard.kind, {"in": 0, "kept": 0})
        f["in"] += shard.size
        f["kept"] += int(codes[0])
        for code in np.flatnonzero(codes[1:]) + 1:
            f[REASONS[code]] = f.get(REASONS[code], 0) + int(codes[code])
    similar = {}
    for row in similarity:
        s = similar.setdefault(row["benchmark"], {"problems": 0, "similar_to_training": 0})
        s["problems"] += 1
        s["similar_to_training"] += int(row["similar_to_training"])
    manifest = stage.finish(
        counts={
            "in": len(reason),
            "kept": int((reason == 0).sum()),
            "removed": removed,
            "near_kept_by_jaccard": kept_by_check,  # band matches below clean.minhash_threshold
        },
        funnel=funnel,
        benchmarks=similar,
        precision=resolve(config.curate.bf16, config.curate.device).as_dict(),
        executor=config.executor.kind,
        llm_judge=found.notes.get("llm"),
        thresholds={
            "minhash_bands_rows": [cfg.minhash_bands, cfg.minhash_rows],
            "minhash_jaccard": cfg.minhash_threshold,
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
        "and decontaminated against the benchmarks (13-gram overlap, embedding similarity, AST similarity, "
        "execution). `kind` is code, textbook or exercise; removed.parquet names what was removed and why.",
        card,
        manifest,
    )
    return manifest


def _benchmarks(cfg: Any) -> Benchmarks:
    return Benchmarks(cfg.humaneval, cfg.mbpp, cfg.mbpp_path, tuple(cfg.extra_benchmarks))


def _thresholds(cfg: Any) -> Thresholds:
    return Thresholds(cfg.ngram_n, cfg.embed_threshold, cfg.ast_threshold, cfg.ast_min_nodes,
                      function_k=cfg.function_k)  # fmt: skip


# -- 1. hashes -> buckets -> clusters ---------------------------------------------------------------------


def _deduplicate(shards: list[Shard], work: Path, cfg: Any, executor: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Every document's reason code (0: kept so far), for duplicates the kept document it duplicates, and how
    many documents a band joined to an earlier one that the Jaccard check kept."""
    jobs = sign_jobs([s.path for s in shards], work, cfg)
    digests = []
    offset = 0
    for shard, d in zip(shards, map_shards(sign_shard, jobs, executor, "deduplicating: hashes"), strict=True):
        shard.offset, shard.size = offset, len(d)
        offset += len(d)
        digests.append(d)
    with console.status("deduplicating: buckets"):
        all_digests = np.concatenate(digests) if digests else np.zeros(0, dtype=np.uint64)
        keys, sigs = [j.keys_path for j in jobs], [j.sigs_path for j in jobs]
        exact, dup_of, joined = duplicate_of(all_digests, keys, cfg.minhash_bands, sigs, cfg.minhash_threshold)
    reason = np.zeros(len(all_digests), dtype=np.int8)
    reason[dup_of >= 0] = REASONS.index("near_duplicate")
    reason[exact] = REASONS.index("exact_duplicate")
    first = first_copies(all_digests)[exact]  # an exact copy names the first, or what that one copies
    dup_of[exact] = np.where(dup_of[first] >= 0, dup_of[first], first)
    return reason, dup_of, int((joined & (dup_of < 0)).sum())


# -- 2. matches against the benchmarks: the one driver, as `phi1 decontam` runs it ----------------------


def _decontaminate(
    run_dir: Path, config: Config, spec: str, shards: list[Shard], reason: np.ndarray, problems: list,
    judge: Judge | None = None,
) -> Found:  # fmt: skip
    """Every detector over the documents deduplication kept; curated corpus files reuse curation's vectors
    when clean embeds with curation's encoder."""
    cur = config.curate
    reuse = sorted((run_dir / "embeddings").glob("ids-*.npy")) if spec == cur.encoder else []
    vectors = Vectors(spec, problems, cur.max_tokens, cur.device, cur.bf16, reuse, reuse_folder="filtered")
    rows = [np.flatnonzero(reason[s.offset : s.offset + s.size] == 0) for s in shards]
    with _sandbox(config) as sandbox:
        return detect_shards(
            shards, rows, _benchmarks(config.clean), _thresholds(config.clean), vectors, sandbox, config.executor,
            ast_floor=min(TABLE3_TAUS), judge=judge,
        )  # fmt: skip


# -- 3. filter -------------------------------------------------------------------------------------------


def _write_outputs(
    stage: Stage,
    shards: list[Shard],
    reason: np.ndarray,
    dup_of: np.ndarray,
    cause: dict[int, tuple[int, int]],
    problems: list,
) -> tuple[CardStats, dict[str, int]]:
    """The kept documents, one output shard per input shard that keeps any, and removed.parquet: every
    removed document with its reason and what it duplicates or resembles. (What the card says of the kept
    documents; counts by reason.)"""
    names = _ids_of(shards, set(np.unique(dup_of[dup_of >= 0]).tolist()))
    card = CardStats(("kind",))
    written = 0
    removed_writer = None
    try:
        for shard in shards:
            table = pq.read_table(shard.path)
            codes = reason[shard.offset : shard.offset + shard.size]
            cols = {c: table.column(c) if c in table.column_names else pa.nulls(len(table), pa.string())
                    for c in ("id", "text", "prompt", "solution", "tests")}  # fmt: skip
            keep = np.flatnonzero(codes == 0)
            if len(keep):
                rows = {c: cols[c].take(keep) for c in cols}
                out = pa.table(
                    {
                        "id": rows["id"],
                        "text": rows["text"],
                        "kind": pa.array([shard.kind] * len(keep), pa.string()),
                        "source": pa.array([shard.folder] * len(keep), pa.string()),
                        "prompt": rows["prompt"].cast(pa.string()),
                        "solution": rows["solution"].cast(pa.string()),
                        "tests": rows["tests"].cast(pa.string()),
                    },
                    schema=SCHEMA,
                )
                pq.write_table(out, stage.shard_path(written))
                card.add(out)
                written += 1
            gone = np.flatnonzero(codes != 0)
            if len(gone):
                ids = cols["id"].take(gone).to_pylist()
                of = []
                for i, doc in zip(gone.tolist(), (shard.offset + gone).tolist(), strict=True):
                    if REASONS[codes[i]] in ("exact_duplicate", "near_duplicate"):
                        of.append(names.get(int(dup_of[doc])))
                    else:
                        of.append(problems[cause[doc][1]].task_id)
                part = pa.table(
                    {
                        "id": pa.array(ids, pa.string()),
                        "source": pa.array([shard.folder] * len(gone), pa.string()),
                        "reason": pa.array([REASONS[c] for c in codes[gone]], pa.string()),
                        "of": pa.array(of, pa.string()),
                    },
                    schema=REMOVED_SCHEMA,
                )
                if removed_writer is None:
                    removed_writer = pq.ParquetWriter(stage.path / "removed.parquet.tmp", REMOVED_SCHEMA)
                removed_writer.write_table(part)
    finally:
        if removed_writer is not None:
            removed_writer.close()
    if removed_writer is not None:
        (stage.path / "removed.parquet.tmp").replace(stage.path / "removed.parquet")
    else:
        write_shard(stage.path / "removed.parquet", [], REMOVED_SCHEMA)
    if written == 0:
        write_shard(stage.shard_path(0), [], SCHEMA)
    counts = np.bincount(reason, minlength=len(REASONS))
    return card, {REASONS[c]: int(counts[c]) for c in range(1, len(REASONS)) if counts[c]}


def _flags(shards: list[Shard], found: Found, problems: list) -> list[dict[str, Any]]:
    matches = found.flagged()
    ids = _ids_of(shards, {m.sample for m in matches})
    offsets = np.array([s.offset for s in shards])
    rows = []
    for m in matches:
        source = shards[int(np.searchsorted(offsets, m.sample, side="right")) - 1].folder
        p = problems[m.problem]
        rows += [{"id": ids[m.sample], "source": source, "benchmark": p.benchmark, "task_id": p.task_id,
                  "detector": d, "score": m.scores[d]} for d in m.detectors]  # fmt: skip
    return rows


def _ids_of(shards: list[Shard], docs: set[int]) -> dict[int, str]:
    """The ids of a few documents, by global index (reads the id column only)."""
    out: dict[int, str] = {}
    wanted = np.array(sorted(docs), dtype=np.int64)
    for shard in shards:
        lo, hi = np.searchsorted(wanted, [shard.offset, shard.offset + shard.size])
        if hi > lo:
            rows = wanted[lo:hi] - shard.offset
            ids = pq.read_table(shard.path, columns=["id"]).column("id").take(rows).to_pylist()
            out.update(zip((wanted[lo:hi]).tolist(), ids, strict=True))
    return out


def _similarity_table(problems: list, found: Found, ast_threshold: float, ids: dict[int, str]) -> list[dict[str, Any]]:
    """Per benchmark problem, how close the unpruned training data (after dedup, before decontamination)
    comes: as the paper measured it for its Table 3, so that "similar" means "had a match", not "had a match
    just below the removal thresholds"."""
    table = []
    for j, p in enumerate(problems):
        tau, ast_doc = found.best_ast.get(j, (0.0, -1))
        has_cos = found.max_cos is not None and found.max_cos_doc is not None and found.max_cos_doc[j] >= 0
        twins = found.twins.get(j, 0)
        row = {
            "benchmark": p.benchmark,
            "task_id": p.task_id,
            "max_ast": round(tau, 4),
            "nearest_ast_id": ids.get(ast_doc),
            "max_cosine": round(float(found.max_cos[j]), 4) if has_cos else 0.0,  # type: ignore[index]
            "nearest_cosine_id": ids.get(int(found.max_cos_doc[j])) if has_cos else None,  # type: ignore[index]
            "ngram_hits": found.ngram.get(j, 0),
            "execution_twins": twins,
            "similar_to_training": bool(tau >= ast_threshold or twins > 0),
        }
        row.update({_tau_column(t): bool(tau >= t) for t in TABLE3_TAUS})
        table.append(row)
    return table


def _sandbox(config: Config) -> Any:
    if not config.clean.execution:
        return contextlib.nullcontext(None)
    return Sandbox(workers=config.clean.workers or Sandbox.default_workers(), mode=config.evaluate.sandbox)
