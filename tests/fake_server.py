"""A real HTTP server on loopback that speaks the OpenAI completions and chat-completions API, with faults
on demand: 429 with Retry-After, 500, a slow answer, a malformed body, a body without choices, a dropped
connection. Tests start it in a thread and benchmarks in a process of its own
(`python tests/fake_server.py --port P --latency 0.2`); it counts every request it receives.
It needs aiohttp (the `dev` extra)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from aiohttp import web

Responder = Callable[[dict], str]


class Loopback(abc.ABC):
    """An aiohttp app on 127.0.0.1, served from a thread of its own while the `with` block runs. A server
    adds its handlers in `routes` (on the server's loop: what must live there is made in it) and has a
    `port` field (0: any free port)."""

    port: int
    max_body = 1 << 20  # bytes of a request body

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @abc.abstractmethod
    def routes(self, app: web.Application) -> None:
        """Add the server's handlers to `app`."""

    def __enter__(self) -> Self:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=self.max_body)
            self.routes(app)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=4096)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@dataclass
class FakeOpenAI(Loopback):
    respond: Responder = lambda body: "ok"
    latency_s: float = 0.0
    faults: deque[str] = field(default_factory=deque)
    requests: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # arrival time of each request
    authorization: set[str] = field(default_factory=set)
    max_inflight: int = 0
    slots: int | None = None  # answers at most this many at once, the rest wait (llama.cpp's --parallel)
    port: int = 0
    _inflight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def routes(self, app: web.Application) -> None:
        self._slots = asyncio.Semaphore(self.slots or 1)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/stats", self._stats)

    # -- handlers ------------------------------------------------------------------------------------

    async def _arrive(self, request: web.Request) -> tuple[dict, web.StreamResponse | None]:
        """Record the request, count it in flight while its latency or fault plays out; (body, fault answer)."""
        body = await request.json()
        with self._lock:
            self.requests.append(body)
            self.times.append(time.monotonic())
            self.authorization.add(request.headers.get("Authorization", ""))
            self._inflight += 1
            self.max_inflight = max(self.max_inflight, self._inflight)
        try:
            return body, await self._fault(request)
        finally:
            self._inflight -= 1

    async def _fault(self, request: web.Request) -> web.StreamResponse | None:
        with self._lock:
            fault = self.faults.popleft() if self.faults else None
        if fault is None:
            if self.slots is None:
                await asyncio.sleep(self.latency_s)
            else:
                async with self._slots:
                    await asyncio.sleep(self.latency_s)
            return None
        if fault.startswith("429"):
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "0.2"})
        if fault == "400":
            return web.json_response({"error": {"message": "bad request"}}, status=400)
        if fault == "500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if fault == "503html":  # a proxy in front of the server, answering in HTML
            return web.Response(text="<html><body>503 Service Unavailable</body></html>", status=503,
                                content_type="text/html")  # fmt: skip
        if fault == "slow":
            await asyncio.sleep(10)
            return None
        if fault == "malformed":
            return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
        if fault == "nochoices":
            return web.json_response({"id": "x", "object": "chat.completion", "created": 0, "model": "m"})
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError
        raise AssertionError(f"unknown fault {fault}")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._arrive(request)
        if fault is not None:
            return fault
        n = int(body.get("n") or 1)
        texts = [self.respond(body) for _ in range(n)]
        return web.json_response(
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {"index": i, "text": t, "finish_reason": "stop", "logprobs": None} for i, t in enumerate(texts)
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5 * n, "total_tokens": 10 + 5 * n},
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._arrive(request)
        if fault is not None:
            return fault
        text = self.respond(body)
        prompt_tokens = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
        completion_tokens = len(text.split())
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"requests": len(self.requests), "max_inflight": self.max_inflight})

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})


def main() -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="loopback OpenAI-compatible server for tests and benchmarks")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeOpenAI(latency_s=args.latency, port=args.port)
    with server:
        print(server.port, flush=True)  # the parent reads the port from the first line
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()  # runs until stdin closes


if __name__ == "__main__":
    main()
