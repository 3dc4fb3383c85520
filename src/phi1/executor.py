"""Where per-shard work runs: in this process, on a process pool sized to the cores (`kind: local`), or as
Ray tasks on a cluster (`kind: ray`). Work is a module-level function of one picklable item (a shard's path
and its settings) that reads and writes the run directory itself, so the same Parquet shards and manifests
come out whichever executor ran it, and a run can move between executors.

Results come back in the order of the items, whatever order the work finished in: outputs are byte-identical
across executors and worker counts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from phi1.config import ExecutorConfig
from phi1.errors import Phi1Error
from phi1.progress import progress_bar

T = TypeVar("T")
R = TypeVar("R")


def map_shards(
    fn: Callable[[T], R],
    items: Sequence[T],
    cfg: ExecutorConfig | None = None,
    label: str = "working",
    unit: str = "shards",
    num_gpus: float = 0.0,
) -> Iterator[R]:
    """fn(item) for every item, yielded in order. `num_gpus`: what one Ray task asks for (GPU actors)."""
    cfg = cfg or ExecutorConfig()
    with progress_bar(len(items), label, unit=unit) as advance:
        for result in _run(fn, items, cfg, num_gpus):
            advance(1)
            yield result


def _run(fn: Callable[[T], R], items: Sequence[T], cfg: ExecutorConfig, num_gpus: float) -> Iterator[R]:
    if cfg.kind == "ray":
        yield from _ray(fn, items, cfg, num_gpus)
        return
    workers = min(cfg.workers or os.cpu_count() or 1, len(items))
    if workers <= 1:
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        # One item in flight per worker plus one queued: results wait in memory only briefly.
        pending = [pool.submit(fn, item) for item in items[: 2 * workers]]
        for nxt in range(2 * workers, len(items) + 2 * workers):
            result = pending.pop(0).result()
            if nxt < len(items):
                pending.append(pool.submit(fn, items[nxt]))
            yield result


def _ray(fn: Callable[[T], R], items: Sequence[T], cfg: ExecutorConfig, num_gpus: float) -> Iterator[R]:
    ray = ray_module()
    connect(cfg)
    # A task whose worker dies is retried (Ray's default, made explicit): a shard's work is idempotent, and
    # what it already paid for (teacher answers) is in the shard's own record on shared storage.
    task = ray.remote(num_cpus=1, num_gpus=num_gpus, max_retries=cfg.max_retries)(fn)
    window = max(2, int(ray.cluster_resources().get("CPU", 2)) * 2)
    refs = [task.remote(item) for item in items[:window]]
    for nxt in range(window, len(items) + window):
        result = ray.get(refs.pop(0))
        if nxt < len(items):
            refs.append(task.remote(items[nxt]))
        yield result


def gpus_per_task(cfg: ExecutorConfig) -> float:
    """What a GPU task asks Ray for: one GPU where the cluster has any, else none (it runs on CPU)."""
    if cfg.kind != "ray":
        return 0.0
    connect(cfg)
    return 1.0 if ray_module().cluster_resources().get("GPU", 0) > 0 else 0.0


def ray_module() -> Any:
    try:
        import ray
    except ImportError:
        raise Phi1Error("executor.kind: ray needs Ray: pip install 'phi1[ray]'") from None
    return ray


def connect(cfg: ExecutorConfig) -> None:
    """Join the cluster at `cfg.address` ("auto": the one this machine belongs to), or start a local one."""
    ray = ray_module()
    if ray.is_initialized():
        return
    try:
        if cfg.address:
            ray.init(address=cfg.address, log_to_driver=False, include_dashboard=False)
        else:
            # "local": a new instance of our own, even where `ray start` left a cluster running on this machine
            # (which ray.init() would join, refusing num_cpus); executor.address=auto joins that one.
            ray.init(address="local", num_cpus=cfg.workers or os.cpu_count() or 1, log_to_driver=False,
                     include_dashboard=False)  # fmt: skip
    except ConnectionError as exc:
        raise Phi1Error(f"executor.address: cannot reach a Ray cluster at {cfg.address}: {exc}") from None
