"""What every teacher backend shares: requests, responses, usage accounting, and the cached, streaming
`generate` loop. A backend only implements `_complete` (one request, async)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from phi1.progress import progress_bar
from phi1.teacher.cache import Cache


@dataclass(frozen=True)
class Params:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Request:
    """Chat messages (or a plain `prompt` for a completions endpoint), sampling parameters, and the index
    of this sample among several asked of the same prompt. `metadata` travels with the request and is not
    part of its identity."""

    messages: tuple[tuple[str, str], ...] = ()  # (role, content)
    prompt: str | None = None
    params: Params = Params()
    sample: int = 0
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @staticmethod
    def chat(user: str, system: str | None = None, **kw: Any) -> Request:
        messages = ((("system", system),) if system else ()) + (("user", user),)
        return Request(messages=messages, **kw)

    def key(self, backend: str, model: str) -> str:
        ident = {
            "backend": backend,
            "model": model,
            "messages": [list(m) for m in self.messages],
            "prompt": self.prompt,
            "params": asdict(self.params),
            "sample": self.sample,
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()

    @property
    def text(self) -> str:
        """The request as one text (for backends and token estimates)."""
        if self.prompt is not None:
            return self.prompt
        return "\n\n".join(content for _, content in self.messages)


@dataclass(frozen=True)
class Response:
    request: Request
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cached: bool = False
    error: str | None = None
    model: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Usage:
    """Per-stage teacher usage: written into the stage manifest."""

    requests: int = 0  # responses delivered, cached or not
    calls: int = 0  # requests that reached the backend
    cache_hits: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None

    def add(self, r: Response, price_prompt: float | None, price_completion: float | None) -> None:
        self.requests += 1
        if r.cached:
            self.cache_hits += 1
        else:
            self.calls += 1
        if r.error is not None:
            self.errors += 1
            return
        if not r.cached:
            # Tokens paid for: a cache hit costs nothing again.
            self.prompt_tokens += r.prompt_tokens
            self.completion_tokens += r.completion_tokens
            if price_prompt is not None or price_completion is not None:
                cost = r.prompt_tokens * (price_prompt or 0) / 1e6 + r.completion_tokens * (price_completion or 0) / 1e6
                self.cost_usd = (self.cost_usd or 0.0) + cost

    def merge(self, other: Usage) -> None:
        for name in ("requests", "calls", "cache_hits", "errors", "prompt_tokens", "completion_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + other.cost_usd

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Teacher(abc.ABC):
    """A backend plus the shared cache. Subclasses implement `_complete`; `concurrency` bounds how many
    `_complete` calls run at once."""

    backend = "base"
    # Answers on a cluster of its own (hf replicas on Ray): stages hand it every request from the driver
    # rather than splitting them into tasks that would each build a teacher.
    distributed = False

    def __init__(
        self,
        model: str,
        cache: Cache | None = None,
        concurrency: int = 16,
        price_prompt_per_m: float | None = None,
        price_completion_per_m: float | None = None,
    ) -> None:
        self.model = model
        self.cache = cache
        self.concurrency = concurrency
        self.price_prompt = price_prompt_per_m
        self.price_completion = price_completion_per_m
        self.usage = Usage()
        self._loop: asyncio.AbstractEventLoop | None = None

    @abc.abstractmethod
    async def _complete(self, request: Request) -> Response:
        """Answer one request (each backend's own)."""

    async def _complete_many(self, requests: list[Request]) -> list[Response]:
        """The default runs `_complete` concurrently."""
        return list(await asyncio.gather(*(self._complete(r) for r in requests)))

    async def _answers(self, requests: list[Request]) -> AsyncIterator[tuple[int, Response]]:
        """(index in `requests`, response) for each request as soon as it is answered. Backends that batch
        (hf) override this so that a short answer does not wait for the longest one of its batch."""
        for i, response in enumerate(await self._complete_many(requests)):
            yield i, response

    def batch_size(self) -> int:
        return 1

    def describe(self) -> dict[str, Any]:
        """What a manifest records of the teacher."""
        return {"backend": self.backend, "model": self.model}

    def progress_note(self) -> str:
        """More for the progress bar, beside the token rate (a batch teacher's batches)."""
        return ""

    async def aclose(self) -> None:  # noqa: B027 - only backends with connections need it
        """Release connections (called on the loop that made them)."""

    def release(self) -> None:  # noqa: B027 - only backends that hold devices need it
        """Let go of what the teacher holds between stages (a cluster's GPUs); the next request takes them
        again. Called by a stage whose next steps need those devices."""

    # -- the shared loop ----------------------------------------------------------------------------

    def generate(
        self, requests: Iterable[Request], usage: Usage | None = None, progress: str | None = None
    ) -> Iterator[Response]:
        """Yield a response for every request as it finishes, in any order. Cached responses come first
        and cost nothing; every new response is in the cache before it is yielded, so a crash loses none.
        A failed request yields a response with `error` set; the batch goes on."""
        requests = list(requests)
        keys = [r.key(self.backend, self.model) for r in requests]
        cached = self.cache.get_many(keys) if self.cache is not None else {}
        # Identical requests (two identical files to annotate, say) are sent once; the copies get its answer.
        todo: list[tuple[Request, str]] = []
        copies: dict[str, list[Request]] = {}
        for r, k in zip(requests, keys, strict=True):
            if k in cached:
                continue
            if k in copies:
                copies[k].append(r)
            else:
                copies[k] = []
                todo.append((r, k))
        stage_usage = usage if usage is not None else Usage()

        started = time.monotonic()

        def tokens_text() -> str:
            tokens = stage_usage.prompt_tokens + stage_usage.completion_tokens
            note = self.progress_note()
            return f"{tokens / max(time.monotonic() - started, 1e-9):,.0f} tok/s" + (f", {note}" if note else "")

        def account(r: Response) -> Response:
            for u in {id(self.usage): self.usage, id(stage_usage): stage_usage}.values():
                u.add(r, self.price_prompt, self.price_completion)
            return r

        with progress_bar(len(requests), progress or "teacher", unit="req", extra=tokens_text) as advance:
            for request, key in zip(requests, keys, strict=True):
                hit = cached.get(key)
                if hit is not None:
                    advance(1)
                    yield account(Response(request, **hit, cached=True))
            if not todo:
                return
            for response, key in self._run_async(todo):
                advance(1)
                yield account(response)
                for copy in copies[key]:
                    advance(1)
                    yield account(replace(response, request=copy, cached=True))  # paid for once

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The teacher's own event loop, in a thread of its own for the teacher's whole life: what lives on
        it (rate limiters) holds across generate() calls."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="phi1-teacher", daemon=True).start()
            self._loop = loop
        return self._loop

    def _run_async(self, todo: list[tuple[Request, str]]) -> Iterator[tuple[Response, str]]:
        """Run the backend on the teacher's event loop; hand (response, key) over as each finishes."""
        results: queue.Queue[tuple[Response, str] | BaseException | None] = queue.Queue()
        stop = threading.Event()

        async def main() -> None:
            gate = asyncio.Semaphore(self.concurrency)
            size = self.batch_size()
            batches = [todo[i : i + size] for i in range(0, len(todo), size)]

            def deliver(key: str, response: Response) -> None:
                if response.error is None and self.cache is not None:
                    self.cache.put(key, self.backend, self.model, response)
                results.put((response, key))

            async def run(batch: list[tuple[Request, str]]) -> None:
                async with gate:
                    if stop.is_set():
                        return
                    answered: set[int] = set()
                    try:
                        async for i, response in self._answers([r for r, _ in batch]):
                            answered.add(i)
                            deliver(batch[i][1], response)
                    except Exception as exc:  # a backend bug must not lose the rest of the batch
                        for i, (r, key) in enumerate(batch):
                            if i not in answered:
                                deliver(key, error_response(r, f"{type(exc).__name__}: {exc}", self.model))

            try:
                await asyncio.gather(*(run(b) for b in batches))
            except BaseException as exc:
                results.put(exc)
            finally:
                try:
                    await self.aclose()
                finally:
                    results.put(None)

        done = asyncio.run_coroutine_threadsafe(main(), self._event_loop())
        try:
            while True:
                item = results.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            with contextlib.suppress(BaseException):
                done.result()

    def complete(self, request: Request) -> Response:
        """One request, through the cache: for `phi1 teacher check` and small jobs."""
        return next(iter(self.generate([request])))


def error_response(request: Request, message: str, model: str) -> Response:
    return Response(request, "", "error", 0, 0, 0.0, error=message, model=model)
