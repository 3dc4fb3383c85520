"""The hf teacher on a Ray cluster: replicas of the checkpoint, one per GPU of the cluster (or as many as
`teacher.replicas` asks, on CPU where the cluster has no GPU), each a Ray actor answering whole batches.

The driver keeps what must not be shared across machines, the cache and the usage: each answer is in the run's
cache before it is passed on. A replica that dies is restarted by Ray and the batch it held runs again there;
every batch answered before is in the cache, so only that batch is computed twice. Cache keys are the local hf
teacher's (backend `hf`, the same model), so a run moves between executors without asking anything again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from phi1.config import ExecutorConfig, TeacherConfig
from phi1.errors import Phi1Error
from phi1.executor import connect, ray_module
from phi1.teacher.base import Request, Response, Teacher
from phi1.teacher.cache import Cache


class Replica:
    """One copy of the checkpoint in a Ray actor. It keeps the ids of the requests it answered, so that a
    test (or a curious user) can see how work was spread and that a restarted replica redid nothing finished."""

    def __init__(self, model: str, batch_size: int, device: str | None) -> None:
        from phi1.teacher.hf_local import HFTeacher

        self.teacher = HFTeacher(model, None, batch_size, device)
        self.answered: list[str] = []

    def answer(self, requests: list[Request]) -> list[tuple[int, Response]]:
        answers = self.teacher.answer_batch(requests)
        self.answered += [requests[i].key(self.teacher.backend, self.teacher.model) for i, _ in answers]
        return answers

    def describe(self) -> dict[str, Any]:
        return self.teacher.describe()

    def answered_keys(self) -> list[str]:
        return self.answered


class ReplicatedHFTeacher(Teacher):
    backend = "hf"
    distributed = True

    def __init__(self, config: TeacherConfig, executor: ExecutorConfig, cache: Cache | None = None) -> None:
        ray = ray_module()
        connect(executor)
        gpus = int(ray.cluster_resources().get("GPU", 0)) if config.device != "cpu" else 0
        replicas = config.replicas or max(gpus, 1)
        if gpus and replicas > gpus:
            raise Phi1Error(f"teacher.replicas: {replicas} replicas need a GPU each; the Ray cluster has {gpus} GPUs")
        # One batch in flight per replica: each is kept busy, and a replica's death loses one batch.
        super().__init__(config.model, cache, replicas, config.price_prompt_per_m, config.price_completion_per_m)
        self._config = config
        self._num_gpus = 1 if gpus else 0
        self._max_retries = executor.max_retries
        self._actors: list[Any] = []
        self._free: asyncio.Queue[Any] | None = None

    def batch_size(self) -> int:
        return self._config.batch_size

    def actors(self) -> list[Any]:
        """The replicas, started on first use (each loads the checkpoint once, where Ray placed it)."""
        if not self._actors:
            ray = ray_module()
            # No CPU held (num_cpus=0): the stages' CPU tasks run beside the replicas, never wait for them.
            replica = ray.remote(
                num_cpus=0,
                num_gpus=self._num_gpus,
                max_restarts=self._max_retries,
                max_task_retries=self._max_retries,
                scheduling_strategy="SPREAD",
            )(Replica)
            c = self._config
            self._actors = [replica.remote(c.model, c.batch_size, c.device) for _ in range(self.concurrency)]
        return self._actors

    async def _answers(self, requests: list[Request]) -> AsyncIterator[tuple[int, Response]]:
        if self._free is None or not self._actors:  # made here: the queue belongs to the teacher's loop
            self._free = asyncio.Queue()
            for actor in self.actors():
                self._free.put_nowait(actor)
        actor = await self._free.get()
        try:
            answers = await actor.answer.remote(requests)
        finally:
            self._free.put_nowait(actor)
        for i, response in answers:
            yield i, response

    async def _complete(self, request: Request) -> Response:
        [(_, response)] = [answer async for answer in self._answers([request])]
        return response

    def describe(self) -> dict[str, Any]:
        """The replicas' own account (their device's precision) while they run; no replica is started for it."""
        first = ray_module().get(self._actors[0].describe.remote()) if self._actors else super().describe()
        return {**first, "replicas": self.concurrency, "gpus_per_replica": self._num_gpus}

    def release(self) -> None:
        """End the replicas and free their GPUs (embedding needs them after annotation)."""
        ray = ray_module()
        for actor in self._actors:
            ray.kill(actor)
        self._actors, self._free = [], None
