"""Teachers: one interface to any LLM (an OpenAI-compatible endpoint, a local checkpoint, or the
built-in offline teacher), sharing a persistent SQLite cache and usage accounting.

Public API: `make_teacher`, `Teacher` (to subclass: see docs/extending.md), `Request`, `Params`,
`Response`, `Usage`, `Cache`. The backends' modules are theirs.
"""

from __future__ import annotations

from pathlib import Path

from phi1.config import ExecutorConfig, TeacherConfig
from phi1.errors import Phi1Error
from phi1.teacher.base import Params, Request, Response, Teacher, Usage
from phi1.teacher.cache import Cache

__all__ = ["Cache", "Params", "Request", "Response", "Teacher", "Usage", "make_teacher"]


def make_teacher(
    config: TeacherConfig, cache_path: str | Path | None = None, executor: ExecutorConfig | None = None
) -> Teacher:
    """Build the configured backend. The cache is `config.cache_path` if set, else `cache_path`
    (normally the run directory's), else none. On a Ray `executor` the hf teacher is replicated over the
    cluster's GPUs; the other backends are endpoints already, and stay as they are."""
    if config.mode == "batch" and config.backend != "openai":
        raise Phi1Error(f"teacher.mode=batch: only the openai backend has a Batch API, not {config.backend!r}")
    path = config.cache_path or cache_path
    cache = Cache(path) if path else None
    prices = {"price_prompt_per_m": config.price_prompt_per_m, "price_completion_per_m": config.price_completion_per_m}
    if config.backend == "offline":
        from phi1.teacher.offline import OfflineTeacher

        return OfflineTeacher(config.model, cache, concurrency=config.concurrency, **prices)
    if config.backend == "openai":
        from phi1.teacher.openai_compat import OpenAITeacher

        args = (config.model, config.base_url, config.api_key_env, cache, config.concurrency, config.max_retries,
                config.timeout_s, config.backoff_base_s, config.backoff_max_s, config.requests_per_minute,
                config.tokens_per_minute)  # fmt: skip
        if config.mode == "batch":
            from phi1.teacher.openai_batch import BatchSettings, OpenAIBatchTeacher

            batch = BatchSettings(config.batch_discount, config.batch_max_requests, int(config.batch_max_mb * 2**20),
                                  config.batch_poll_s, config.batch_window)  # fmt: skip
            return OpenAIBatchTeacher(*args, batch=batch, **prices)
        return OpenAITeacher(*args, **prices)
    if config.backend == "hf" and executor is not None and executor.kind == "ray":
        from phi1.teacher.hf_replicas import ReplicatedHFTeacher

        return ReplicatedHFTeacher(config, executor, cache)
    if config.backend == "hf":
        from phi1.teacher.hf_local import HFTeacher

        return HFTeacher(config.model, cache, config.batch_size, config.device, **prices)
    raise Phi1Error(f"teacher.backend: unknown backend {config.backend!r}")
