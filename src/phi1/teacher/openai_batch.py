"""`teacher.mode: batch`: the OpenAI Batch API (and providers that copy it) at about half the price, with a
24-hour window. Requests are written as JSONL, uploaded (`/v1/files`), submitted (`/v1/batches`), polled,
and their output and error files read back into the same cache as online answers (the same keys: a run can
switch modes and keep every answer).

Every batch and its requests are recorded in the cache database once its input file is uploaded, before it
is created, so a run killed while waiting polls the same batches when it starts again and submits nothing
twice; one killed before it read the created batch's id finds that batch by its input file. A line that
failed (its own error, or a body without text) goes into the next batch, up to `max_retries` times; a batch
that expired or was cancelled gives back what it finished and its other lines go into the next batch.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import openai

from phi1.errors import Phi1Error
from phi1.teacher.base import Params, Request, Response, error_response
from phi1.teacher.openai_compat import OpenAITeacher, Retryable

FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
PENDING = "file:"  # a recorded batch's id until the provider names it: its input file's


@dataclass(frozen=True)
class BatchSettings:
    discount: float = 0.5  # batch price / online price
    max_requests: int = 50_000  # lines per batch (OpenAI's limit)
    max_bytes: int = 190 << 20  # bytes of the input file (OpenAI's limit is 200 MB)
    poll_s: float = 30.0
    window: str = "24h"


class OpenAIBatchTeacher(OpenAITeacher):
    """The openai backend, answered through batches. Same identity as online: the cache is shared."""

    def __init__(self, *args: Any, batch: BatchSettings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.cache is None:
            raise Phi1Error("teacher.mode=batch needs a teacher cache: the batches are recorded there")
        self.batch = batch
        self.price_prompt = None if self.price_prompt is None else self.price_prompt * batch.discount
        self.price_completion = None if self.price_completion is None else self.price_completion * batch.discount
        self.submitted = 0  # batches this teacher submitted or resumed
        self.finished = 0

    def batch_size(self) -> int:
        return self.batch.max_requests

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mode": "batch", "batch_discount": self.batch.discount,
                "batches": self.submitted}  # fmt: skip

    def progress_note(self) -> str:
        return f"batches {self.finished}/{self.submitted} done"

    async def _answers(self, requests: list[Request]) -> AsyncIterator[tuple[int, Response]]:
        """Each request's response as its batch finishes; open batches of an earlier run are polled first."""
        assert self.cache is not None
        client = self._client_for_loop()
        keys = [r.key(self.backend, self.model) for r in requests]
        index = {k: i for i, k in enumerate(keys)}
        opened = self.cache.open_batches(keys)
        live = {bid: [k for k, _ in lines] for bid, lines in opened.items()}
        known = {k: _request_of(j) for lines in opened.values() for k, j in lines}
        known.update(zip(keys, requests, strict=True))
        self.submitted += len(live)
        for bid in [b for b in live if b.startswith(PENDING)]:  # created, or not, by a run that died meanwhile
            chunk = live.pop(bid)
            live[await self._adopt(client, bid, self._line(chunk[0], known[chunk[0]])[0])] = chunk
        in_flight = {k for ks in live.values() for k in ks}
        pending = [k for k in keys if k not in in_flight]
        lines: dict[str, tuple[str, bytes]] = {}  # key -> (endpoint, JSONL line), made once: a retry sends it again
        tries = dict.fromkeys(keys, 0)
        started = time.monotonic()
        while pending or live:
            for k in pending:
                if k not in lines:
                    lines[k] = self._line(k, known[k])
            for chunk in self._chunks(pending, lines):
                live[await self._submit(client, chunk, lines, known)] = chunk
            pending = []
            await asyncio.sleep(0 if not live else self.batch.poll_s)
            for bid in list(live):
                batch = await self._retry(lambda bid=bid: client.batches.retrieve(bid))
                if batch.status not in FINAL:
                    continue
                done = await self._results(client, batch, known, time.monotonic() - started)
                for key in live.pop(bid):
                    outcome = done.get(key, "unfinished: the batch " + batch.status)
                    if isinstance(outcome, Response):
                        if key in index:
                            yield index[key], outcome
                        elif outcome.error is None:  # an earlier run's request this one does not need: keep it
                            self.cache.put(key, self.backend, self.model, outcome)
                    elif key in index:
                        tries[key] += 1
                        if tries[key] > self.max_retries:
                            yield index[key], error_response(known[key], f"batch line failed: {outcome}", self.model)
                        else:
                            pending.append(key)
                self.cache.close_batch(bid, batch.status)
                self.finished += 1

    def _chunks(self, keys: list[str], lines: dict[str, tuple[str, bytes]]) -> list[list[str]]:
        """`keys` split by endpoint, then under the provider's limits on lines and bytes."""
        by_path: dict[str, list[str]] = {}
        for k in keys:
            by_path.setdefault(lines[k][0], []).append(k)
        chunks: list[list[str]] = []
        for group in by_path.values():
            chunk, size = [], 0
            for k in group:
                n = len(lines[k][1])
                if chunk and (len(chunk) >= self.batch.max_requests or size + n > self.batch.max_bytes):
                    chunks.append(chunk)
                    chunk, size = [], 0
                chunk.append(k)
                size += n
            chunks.append(chunk)
        return chunks

    def _line(self, key: str, request: Request) -> tuple[str, bytes]:
        """(the endpoint, the request as a line of a batch's input file)."""
        path, body = self._body(request)
        line = json.dumps({"custom_id": key, "method": "POST", "url": "/v1" + path, "body": body}) + "\n"
        return "/v1" + path, line.encode()

    async def _submit(
        self, client: openai.AsyncOpenAI, chunk: list[str], lines: dict[str, tuple[str, bytes]],
        known: dict[str, Request],
    ) -> str:  # fmt: skip
        assert self.cache is not None
        data = b"".join(lines[k][1] for k in chunk)
        endpoint = lines[chunk[0]][0]
        upload = await self._retry(lambda: client.files.create(file=("phi1-batch.jsonl", data), purpose="batch"))
        self.cache.record_batch(PENDING + upload.id, endpoint, [(k, _request_json(known[k])) for k in chunk])
        self.submitted += 1
        return await self._create(client, upload.id, endpoint)

    async def _create(self, client: openai.AsyncOpenAI, file_id: str, endpoint: str) -> str:
        assert self.cache is not None
        batch = await self._retry(
            lambda: client.batches.create(
                input_file_id=file_id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window=self.batch.window,  # type: ignore[arg-type]
            )
        )
        self.cache.name_batch(PENDING + file_id, batch.id)
        return batch.id

    async def _adopt(self, client: openai.AsyncOpenAI, pending: str, endpoint: str) -> str:
        """The provider's batch made from a recorded input file (its list is newest first; an hour of clock
        skew allowed), or a batch created from that file now where there is none."""
        assert self.cache is not None
        file_id = pending.removeprefix(PENDING)
        since = self.cache.batch_created_at(pending) - 3600
        page = await self._retry(lambda: client.batches.list(limit=100))
        while True:
            for batch in page.data:
                if batch.input_file_id == file_id:
                    self.cache.name_batch(pending, batch.id)
                    return batch.id
            if not page.data or page.data[-1].created_at < since or not page.has_next_page():
                return await self._create(client, file_id, endpoint)
            page = await self._retry(page.get_next_page)

    async def _results(
        self, client: openai.AsyncOpenAI, batch: Any, known: dict[str, Request], waited_s: float
    ) -> dict[str, Response | str]:
        """What a finished batch answered: a response per line that has one, the reason for each that failed."""
        out: dict[str, Response | str] = {}
        for file_id in (batch.error_file_id, batch.output_file_id):  # output last: it wins over an error
            if not file_id:
                continue
            content = await self._retry(lambda file_id=file_id: client.files.content(file_id))
            for raw in content.text.splitlines():
                if raw.strip():
                    line = json.loads(raw)
                    key = line.get("custom_id")
                    if key in known:
                        out[key] = self._outcome(known[key], line, waited_s)
        return out

    def _outcome(self, request: Request, line: dict[str, Any], waited_s: float) -> Response | str:
        response = line.get("response") or {}
        status = response.get("status_code")
        if line.get("error") or status != 200:
            error = line.get("error") or (response.get("body") or {}).get("error") or {}
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            if isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429):
                return error_response(request, f"HTTP {status}: {message}", self.model)  # retrying will not help
            return f"HTTP {status}: {message}" if status else f"error: {message}"
        try:
            text, finish, pt, ct, model = self._parse(request, response.get("body"))
        except Retryable as exc:
            return str(exc)
        return Response(request, text, finish, pt, ct, waited_s, model=model)

    async def _retry(self, call: Any) -> Any:
        """A files or batches call, retried on the faults a long wait meets (429, 5xx, a dropped connection)."""
        for attempt in range(self.max_retries + 1):
            try:
                return await call()
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError):
                if attempt == self.max_retries:
                    raise
                await asyncio.sleep(self._delay(attempt, None))
        raise AssertionError("unreachable")


def _request_json(request: Request) -> str:
    return json.dumps({"messages": [list(m) for m in request.messages], "prompt": request.prompt,
                       "params": asdict(request.params), "sample": request.sample})  # fmt: skip


def _request_of(text: str) -> Request:
    d = json.loads(text)
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in d["params"].items()}
    return Request(tuple(tuple(m) for m in d["messages"]), d["prompt"], Params(**params), d["sample"])
