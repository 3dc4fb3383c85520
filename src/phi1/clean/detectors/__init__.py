"""Benchmark-contamination detectors, one module each, behind one interface (`base.Detector`), run by one
driver (`phi1.clean.driver`) for `phi1 clean`, `phi1 decontam` and the report's similarity split.

`TYPES` is the registry, in order of precedence (a sample that several detectors flag is removed for the
first of them). Adding a detector is a module with a `Detector` subclass and its line here.
"""

from __future__ import annotations

import importlib

from phi1.clean.detectors.base import Detector, Hit, ShardText, Thresholds

# name -> the class, or "module:Class" (imported when first used: the execution detector imports the
# sandbox, which the text detectors need not).
TYPES: dict[str, type[Detector] | str] = {
    "ngram": "phi1.clean.detectors.ngram:NgramDetector",
    "embedding": "phi1.clean.detectors.embedding:EmbeddingDetector",
    "ast": "phi1.clean.detectors.ast_match:AstDetector",
    "execution": "phi1.clean.detectors.execution:ExecutionDetector",
    "llm": "phi1.clean.detectors.llm_judge:LLMJudgeDetector",  # the teacher as judge: only when asked for
}


def names() -> tuple[str, ...]:
    """Every registered detector, in order of precedence."""
    return tuple(TYPES)


def detector_type(name: str) -> type[Detector]:
    entry = TYPES[name]
    if isinstance(entry, str):
        module, _, cls = entry.partition(":")
        entry = TYPES[name] = getattr(importlib.import_module(module), cls)
    return entry


__all__ = ["TYPES", "Detector", "Hit", "ShardText", "Thresholds", "detector_type", "names"]
