"""`phi1 curate`: corpus -> annotations -> embeddings -> classifier -> filtered, each step cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phi1.config import Config
from phi1.curate.annotate import annotate, annotate_key
from phi1.curate.classifier import train
from phi1.curate.corpus import build_corpus, corpus_stage
from phi1.curate.embed import embed_corpus, embed_key
from phi1.curate.select import select
from phi1.rundir import Stage
from phi1.teacher import Teacher


def run_curate(config: Config, run_dir: Path, teacher: Teacher, force: bool = False) -> dict[str, Any]:
    """Run (or resume) every curation step; returns the manifests by step."""
    run_dir = Path(run_dir)
    cfg = config.curate
    corpus = build_corpus(run_dir, config.corpus, force)
    corpus_key = corpus_stage(run_dir, config.corpus).key
    annotations = annotate(run_dir, cfg, teacher, corpus_key, config.seed, force, config.executor, config.teacher)
    teacher.release()  # embedding needs the GPUs the teacher's replicas held
    embeddings = embed_corpus(run_dir, cfg, corpus_key, force, config.executor)
    keys = {
        "annotations": annotate_key(cfg, corpus_key, teacher, config.seed),
        "embeddings": embed_key(cfg, corpus_key),
    }
    classifier = train(run_dir, cfg, keys, config.seed, force)
    classifier_key = Stage(run_dir, "classifier", "").manifest() or {}
    filtered = select(
        run_dir, cfg, {"classifier": classifier_key.get("cache_key", ""), "corpus": corpus_key}, corpus, force
    )
    return {
        "corpus": corpus,
        "annotations": annotations,
        "embeddings": embeddings,
        "classifier": classifier,
        "filtered": filtered,
    }
