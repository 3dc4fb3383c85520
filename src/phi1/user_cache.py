"""phi1's cache outside any run directory (`$PHI1_CACHE_DIR`, else `~/.cache/phi1`): things that depend only
on shipped or user files, keyed by their content, and so shared by every run (converted GGUF checkpoints,
the benchmarks' embedding vectors)."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache(kind: str) -> Path:
    return Path(os.environ.get("PHI1_CACHE_DIR") or Path.home() / ".cache" / "phi1") / kind
