"""A real HTTP server on loopback that speaks the OpenAI Batch API: `/v1/files` (upload, content) and
`/v1/batches` (create, retrieve, list). A batch stays `in_progress` for `polls` retrieves, then completes,
each line answered by `respond(body)`. Faults on demand: lines whose prompt holds a `fail_once` marker fail
the first time (in the error file, HTTP 500); `expire` batches expire with only their first half answered;
`hold` keeps every batch in progress until cleared; `mute_create` ("before" or "after" the batch is made)
holds a create request unanswered until cleared, as a client killed meanwhile sees it. It counts every line
it was ever sent, by custom_id."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from fake_server import Loopback


@dataclass
class FakeBatchAPI(Loopback):
    respond: Callable[[dict], str] = lambda body: "ok"
    polls: int = 1  # retrieves a batch stays in progress
    fail_once: set[str] = field(default_factory=set)  # prompt markers whose first line fails
    expire: int = 0  # how many of the next batches expire half done
    hold: bool = False
    mute_create: str = ""
    max_lines: int | None = None  # a batch with more lines is refused at creation (400)
    lines_sent: Counter = field(default_factory=Counter)
    created: list[str] = field(default_factory=list)
    creating: int = 0  # create requests received
    retrieves: int = 0
    port: int = 0
    _files: dict[str, bytes] = field(default_factory=dict)
    _batches: dict[str, dict] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    max_body = 1 << 30  # an input file of many requests

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_get("/v1/batches", self._list)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form["file"]
        data = upload.file.read() if hasattr(upload, "file") else bytes(upload)  # type: ignore[union-attr]
        assert form["purpose"] == "batch"
        file_id = self._new_id("file")
        self._files[file_id] = data
        return web.json_response({"id": file_id, "object": "file", "bytes": len(data), "created_at": 0,
                                  "filename": "batch.jsonl", "purpose": "batch", "status": "processed"})  # fmt: skip

    async def _content(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self._files[request.match_info["id"]], content_type="application/jsonl")

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.creating += 1
        while self.mute_create == "before":
            await asyncio.sleep(0.05)
        if request.transport is None or request.transport.is_closing():
            return web.Response(status=499)  # the client left before its batch was made: none is
        lines = [json.loads(raw) for raw in self._files[body["input_file_id"]].splitlines() if raw.strip()]
        if self.max_lines is not None and len(lines) > self.max_lines:
            return web.json_response({"error": {"message": "too many requests in one batch"}}, status=400)
        batch_id = self._new_id("batch")
        with self._lock:
            self.lines_sent.update(line["custom_id"] for line in lines)
            self.created.append(batch_id)
            expire = self.expire > 0
            self.expire -= expire
        self._batches[batch_id] = {"lines": lines, "polls": 0, "expire": expire, "endpoint": body["endpoint"],
                                   "window": body["completion_window"], "status": "validating",
                                   "input_file_id": body["input_file_id"], "created_at": int(time.time())}  # fmt: skip
        while self.mute_create == "after":
            await asyncio.sleep(0.05)
        return web.json_response(self._batch_json(batch_id))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        """Newest first, one page (the client follows `has_more`)."""
        data = [self._batch_json(b) for b in reversed(self.created)]
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})  # fmt: skip

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        batch_id = request.match_info["id"]
        b = self._batches[batch_id]
        self.retrieves += 1
        if b["status"] not in ("completed", "expired"):
            b["polls"] += 1
            b["status"] = "in_progress"
            if not self.hold and b["polls"] > self.polls:
                self._finish(batch_id)
        return web.json_response(self._batch_json(batch_id))

    def _finish(self, batch_id: str) -> None:
        b = self._batches[batch_id]
        lines = b["lines"][: len(b["lines"]) // 2] if b["expire"] else b["lines"]
        out, errors = [], []
        for line in lines:
            prompt = json.dumps(line["body"])
            marker = next((m for m in self.fail_once if m in prompt), None)
            if marker is not None:
                self.fail_once.discard(marker)
                errors.append({"id": "r", "custom_id": line["custom_id"], "response": {"status_code": 500,
                               "body": {"error": {"message": "boom"}}}, "error": None})  # fmt: skip
                continue
            text = self.respond(line["body"])
            body = {"id": "chatcmpl-1", "object": "chat.completion", "model": line["body"]["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split())}}  # fmt: skip
            out.append({"id": "r", "custom_id": line["custom_id"], "response": {"status_code": 200, "body": body},
                        "error": None})  # fmt: skip
        for name, rows in (("output", out), ("error", errors)):
            if rows:
                file_id = self._new_id("file")
                self._files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                b[f"{name}_file_id"] = file_id
        b["status"] = "expired" if b["expire"] else "completed"

    def _batch_json(self, batch_id: str) -> dict:
        b = self._batches[batch_id]
        return {"id": batch_id, "object": "batch", "endpoint": b["endpoint"], "input_file_id": b["input_file_id"],
                "completion_window": b["window"], "status": b["status"], "created_at": b["created_at"],
                "output_file_id": b.get("output_file_id"), "error_file_id": b.get("error_file_id"),
                "request_counts": {"total": len(b["lines"]), "completed": 0, "failed": 0}}  # fmt: skip
