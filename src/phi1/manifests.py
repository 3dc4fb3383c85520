"""Typed views of the manifests: one TypedDict per step, for the readers of a run directory (the report).

A manifest is written by its stage as JSON (`rundir.Stage.finish`); these types say which fields a reader may
count on. Every manifest has the common fields; each step adds its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict, cast


class Usage(TypedDict):
    requests: int
    calls: int
    cache_hits: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


class Manifest(TypedDict, total=False):
    stage: str
    cache_key: str
    status: str  # running | complete
    format: int
    derived_from: dict[str, Any]
    inputs: dict[str, str | None]
    config: dict[str, Any]
    timings: dict[str, float]  # seconds per part, and total_s
    precision: dict[str, Any]
    teacher: Usage


class CorpusManifest(Manifest, total=False):
    counts: dict[str, Any]  # documents, bytes, skipped (by reason), shards


class AnnotationsManifest(Manifest, total=False):
    counts: dict[str, int]  # sampled, valid, invalid, retried
    score_histogram: dict[str, int]


class ClassifierManifest(Manifest, total=False):
    metrics: dict[str, float | None]  # accuracy, macro_f1, roc_auc, ...


class FilteredManifest(Manifest, total=False):
    counts: dict[str, Any]  # read, skipped, scored, kept, kept_bytes, kept_tokens_approx
    score_histogram: dict[str, list[float]]


class SynthManifest(Manifest, total=False):
    counts: dict[str, Any]  # requested, kept | verified, dropped | rejected (by reason)
    diversity: dict[str, Any]


class CleanManifest(Manifest, total=False):
    counts: dict[str, Any]  # in, kept, removed (by reason)
    funnel: dict[str, dict[str, int]]  # per kind: in, kept, and a count per removal reason
    benchmarks: dict[str, dict[str, int]]


class TokensManifest(Manifest, total=False):
    counts: dict[str, int]  # tokens per set
    index: dict[str, Any]


class TrainManifest(Manifest, total=False):
    steps: int
    parameters: dict[str, int]
    first_loss: float | None
    final_loss: float | None
    final_val: dict[str, float] | None
    tokens_per_s: float
    mfu: float | None
    device: str
    peak_memory_gb: float | None
    base: str  # pretrain with model.base: the base handed on (steps 0) or continued
    merge_base: dict[str, Any] | None  # finetune: the average with its start (finetune.merge_base)


class EvalManifest(Manifest, total=False):
    results: dict[str, dict[str, Any]]  # model -> benchmark -> pass_at_k, status_counts, similarity_split


TYPES: dict[str, type] = {
    "corpus": CorpusManifest,
    "annotations": AnnotationsManifest,
    "classifier": ClassifierManifest,
    "filtered": FilteredManifest,
    "textbook": SynthManifest,
    "exercises": SynthManifest,
    "clean": CleanManifest,
    "tokens": TokensManifest,
    "pretrain": TrainManifest,
    "finetune": TrainManifest,
    "eval": EvalManifest,
}


def read(run_dir: Path, folder: str) -> Manifest | None:
    """The manifest of a complete step, typed as its step's; None where the step has not finished."""
    path = Path(run_dir) / folder / "manifest.json"
    try:
        m = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return cast(Manifest, m) if m.get("status") == "complete" else None


def mfu_text(m: TrainManifest) -> str:
    """MFU as a reader wants it: a percentage, or why there is none (on a CPU it does not apply)."""
    if m.get("mfu") is not None:
        return f"{m['mfu']:.1%}"
    return "n/a (CPU)" if str(m.get("device", "cpu")).startswith("cpu") else "n/a (peak FLOP/s unknown)"
