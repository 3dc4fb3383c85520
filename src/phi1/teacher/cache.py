"""The persistent teacher cache: SQLite in WAL mode, one row per finished response.

Each response is committed on its own as soon as it arrives, so a process killed with SIGKILL loses none
that had finished; WAL lets several processes read and write one cache file at once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi1.errors import Phi1Error

if TYPE_CHECKING:
    from phi1.teacher.base import Response

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    created REAL NOT NULL
)
"""


# Provider batches (teacher.mode: batch): what was submitted, so a killed run polls the same batches again
# and never submits a request twice.
_BATCH_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, state TEXT NOT NULL, endpoint TEXT NOT NULL, "
    "created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS batch_requests (batch_id TEXT NOT NULL, key TEXT NOT NULL, request TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS batch_requests_key ON batch_requests (key)",
)


class Cache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against process kill
            self._db.execute(_SCHEMA)
            for statement in _BATCH_SCHEMA:
                self._db.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise Phi1Error(f"{self.path}: not a usable teacher cache ({exc})") from None

    def _where_in(self, query: str, keys: list[str]) -> list[tuple]:
        """The rows of `query` (its `{}` the placeholders of an IN list) over `keys`, 500 at a time: SQLite
        caps a statement's parameters. The caller holds the lock."""
        rows: list[tuple] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows += self._db.execute(query.format(",".join("?" * len(chunk))), chunk).fetchall()
        return rows

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        query = ("SELECT key, text, finish_reason, prompt_tokens, completion_tokens, latency_s, model "
                 "FROM responses WHERE key IN ({})")  # fmt: skip
        with self._lock:
            rows = self._where_in(query, list(keys))
        fields = ("text", "finish_reason", "prompt_tokens", "completion_tokens", "latency_s", "model")
        return {key: dict(zip(fields, rest, strict=True)) for key, *rest in rows}

    def put(self, key: str, backend: str, model: str, response: Response) -> None:
        req = response.request
        request_json = json.dumps(
            {"messages": [list(m) for m in req.messages], "prompt": req.prompt, "sample": req.sample}
        )
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    backend,
                    model,
                    request_json,
                    response.text,
                    response.finish_reason,
                    response.prompt_tokens,
                    response.completion_tokens,
                    response.latency_s,
                    time.time(),
                ),
            )

    def record_batch(self, batch_id: str, endpoint: str, requests: list[tuple[str, str]]) -> None:
        """A batch about to be submitted (its id: `file:` and the uploaded input file's id, until the provider
        gives one: `name_batch`) and its (key, request JSON) lines, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO batches VALUES (?, ?, ?, ?)", (batch_id, "submitted", endpoint, time.time()))
            self._db.executemany("INSERT INTO batch_requests VALUES (?, ?, ?)", [(batch_id, k, r) for k, r in requests])
            self._db.execute("COMMIT")

    def open_batches(self, keys: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """Batches still open that hold any of `keys`: batch id -> all its (key, request JSON) lines."""
        query = ("SELECT DISTINCT r.batch_id FROM batch_requests r JOIN batches b ON b.id = r.batch_id "
                 "WHERE b.state = 'submitted' AND r.key IN ({})")  # fmt: skip
        with self._lock:
            ids = {row[0] for row in self._where_in(query, list(keys))}
            return {
                bid: self._db.execute("SELECT key, request FROM batch_requests WHERE batch_id = ?", (bid,)).fetchall()
                for bid in sorted(ids)
            }

    def name_batch(self, old: str, new: str) -> None:
        """The provider's id for a batch recorded before it was created."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE batches SET id = ? WHERE id = ?", (new, old))
            self._db.execute("UPDATE batch_requests SET batch_id = ? WHERE batch_id = ?", (new, old))
            self._db.execute("COMMIT")

    def batch_created_at(self, batch_id: str) -> float:
        with self._lock:
            return float(self._db.execute("SELECT created FROM batches WHERE id = ?", (batch_id,)).fetchone()[0])

    def close_batch(self, batch_id: str, state: str) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET state = ? WHERE id = ?", (state, batch_id))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
