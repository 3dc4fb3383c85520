"""`phi1 curate`: corpus -> annotations -> embeddings -> classifier -> filtered, each step cached.

Public API: `run_curate`; `phi1.curate.embed.load_encoder` and `encode` (the encoders, which clean's
embedding detector uses too); `phi1.curate.readers.iter_corpus`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phi1.config import Config
from phi1.curate.annotate import annotate
from phi1.curate.classifier import train
from phi1.curate.corpus import build_corpus
from phi1.curate.embed import embed_corpus
from phi1.curate.select import select
from phi1.rundir import open_step
from phi1.teacher import Teacher


def run_curate(config: Config, run_dir: Path, teacher: Teacher, force: bool = False) -> dict[str, Any]:
    """Run (or resume) every curation step; returns the manifests by step. Each step's key is derived from
    its declaration (`phi1.steps.STEPS`) once the steps before it are done."""
    run_dir = Path(run_dir)
    cfg = config.curate
    corpus = build_corpus(run_dir, config, force)
    annotations = annotate(
        run_dir,
        cfg,
        teacher,
        open_step(run_dir, "annotations", config),
        config.seed,
        force,
        config.executor,
        config.teacher,
    )
    teacher.release()  # embedding needs the GPUs the teacher's replicas held
    embeddings = embed_corpus(run_dir, cfg, open_step(run_dir, "embeddings", config), force, config.executor)
    classifier = train(run_dir, cfg, open_step(run_dir, "classifier", config), config.seed, force)
    filtered = select(run_dir, cfg, open_step(run_dir, "filtered", config), corpus, force)
    return {
        "corpus": corpus,
        "annotations": annotations,
        "embeddings": embeddings,
        "classifier": classifier,
        "filtered": filtered,
    }
