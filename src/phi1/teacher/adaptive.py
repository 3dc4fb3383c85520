"""How many requests to keep in flight, from what the server shows it can do at once.

A server that answers one request at a time (llama.cpp with one slot, Ollama by default) queues the rest:
with 16 in flight, each waits for 15 others, and a request's timeout runs out while it waits, not while it is
answered. So the limit follows the server's measured parallelism: by Little's law, the tokens it delivers per
second times the fastest time per token it has shown (its unqueued speed) is the number of answers it writes
at once. Per token, not per request, so that answers of different lengths do not skew it. The limit is twice
that plus one (headroom to find more), within [1, the configured concurrency]. It starts at a few requests and
opens up as soon as the server keeps up: a parallel server reaches the full concurrency within a round trip.
State is real here: a window of completions and the requests in flight.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

START = 4  # requests in flight before anything is measured
WINDOW = 32  # completions the throughput is measured over
MIN_SAMPLES = 4


class AdaptiveLimit:
    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = min(maximum, START)
        self.inflight = 0
        self.parallelism: float | None = None  # the server's, as last measured
        self._fastest: float | None = None  # seconds per token, the lowest seen
        self._done: deque[tuple[float, int]] = deque(maxlen=WINDOW)  # (finish time, tokens)
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:  # made on the loop that uses it
            self._changed = asyncio.Condition()
        return self._changed

    async def acquire(self) -> None:
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: self.inflight < self.limit)
            self.inflight += 1

    async def release(self, seconds: float | None = None, tokens: int = 0) -> None:
        """A request ended; `seconds` and `tokens` when it was answered (a failure teaches nothing)."""
        changed = self._condition()
        async with changed:
            self.inflight -= 1
            if seconds is not None:
                self._measure(seconds, max(1, tokens))
            changed.notify_all()

    def _measure(self, seconds: float, tokens: int) -> None:
        now = time.monotonic()
        per_token = seconds / tokens
        self._fastest = per_token if self._fastest is None else min(self._fastest, per_token)
        self._done.append((now, tokens))
        if len(self._done) < MIN_SAMPLES:
            return
        span = self._done[-1][0] - self._done[0][0]
        delivered = sum(t for _, t in list(self._done)[1:])
        if span <= 0:  # several answers at once: the server writes them in parallel
            self.parallelism = float(self.maximum)
        else:
            self.parallelism = delivered / span * self._fastest
        self.limit = max(1, min(self.maximum, math.ceil(2 * self.parallelism) + 1))
