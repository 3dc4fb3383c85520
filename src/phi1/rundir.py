"""The run directory: one folder per stage, each with Parquet shards and a `manifest.json`.

A stage's cache key hashes its config section and the cache keys of its inputs, so changing one section
redoes that stage and everything after it, and nothing else. A stage whose manifest says `complete` with
the same key is skipped; an interrupted stage is resumed by the stage itself (teacher calls come from the
cache, embeddings from finished shards).
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from phi1 import __version__
from phi1.errors import Phi1Error
from phi1.progress import console
from phi1.records import atomic_write, write_json


def stage_key(section: Any, inputs: Iterable[str] = ()) -> str:
    """A stable hash of a stage's configuration (without its execution-only fields) and its inputs' keys."""
    section = _result_fields(section)
    blob = json.dumps({"config": section, "inputs": sorted(inputs), "format": 1}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _result_fields(config: Any) -> Any:
    if hasattr(config, "result_fields"):
        return config.result_fields()
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    return config


def config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """`field: old -> new` for every leaf that differs between two config trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += config_changes(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if old != new:
        return [f"{prefix.rstrip('.')}: {json.dumps(old, default=str)} -> {json.dumps(new, default=str)}"]
    return []


class Stage:
    """One stage's folder: its manifest, shards and timings. State is real here: the manifest on disk."""

    def __init__(self, run_dir: Path, name: str, key: str) -> None:
        self.run_dir = Path(run_dir)
        self.name = name
        self.key = key
        self.path = self.run_dir / name
        self.manifest_path = self.path / "manifest.json"
        self._start = 0.0
        self.timings: dict[str, float] = {}

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def is_complete(self) -> bool:
        m = self.manifest()
        return bool(m and m.get("status") == "complete" and m.get("cache_key") == self.key)

    def holds_checkpoints(self) -> bool:
        return any(self.path.glob("checkpoints/step-*")) or (self.path / "final" / "config.json").exists()

    def changes(self, config: Any, inputs: dict[str, str]) -> list[str]:
        """What differs from the run that left this folder: config fields that decide the result, and inputs."""
        m = self.manifest() or {}
        old = m.get("config")
        excluded = getattr(config, "EXECUTION_ONLY", frozenset())
        if isinstance(old, dict):
            old = {k: v for k, v in old.items() if k not in excluded}
        out = config_changes(old, _result_fields(config))
        out += [f"input {name} changed" for name in sorted(inputs) if m.get("inputs", {}).get(name) != inputs[name]]
        return out or ["phi1's format of the stage"]

    def begin(self, config: Any, inputs: dict[str, str], force: bool = False) -> None:
        """Start (or resume) the stage. Work left by a run with another key is thrown away and the changed
        fields are named, except checkpoints: a folder holding them is deleted only with `force`."""
        m = self.manifest()
        stale = m is not None and m.get("cache_key") != self.key
        if stale and not force:
            changed = "; ".join(self.changes(config, inputs))
            if self.holds_checkpoints():
                raise Phi1Error(
                    f"{self.path}: the {self.name} settings changed ({changed}); it holds training checkpoints, "
                    "which phi1 deletes only with --force: restore the old values, use another --run-dir, or "
                    "pass --force to start the stage over"
                )
            console.print(f"{self.name}: settings changed ({changed}); redoing it")
        if force or stale:
            shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self._start = time.perf_counter()
        self._write(
            {
                "stage": self.name,
                "cache_key": self.key,
                "status": "running",
                "inputs": inputs,
                "config": config.model_dump(mode="json") if hasattr(config, "model_dump") else config,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "phi1_version": __version__,
                "python": platform.python_version(),
            }
        )

    def finish(self, **fields: Any) -> dict[str, Any]:
        m = self.manifest() or {}
        m.update(fields)
        m["status"] = "complete"
        m["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        m["timings"] = {**self.timings, "total_s": round(time.perf_counter() - self._start, 3)}
        self._write(m)
        return m

    def _write(self, manifest: dict[str, Any]) -> None:
        write_json(self.manifest_path, manifest)

    def timed(self, label: str) -> _Timer:
        return _Timer(self.timings, label)

    # -- shards ---------------------------------------------------------------------------------------

    def shard_path(self, index: int) -> Path:
        return self.path / f"data-{index:05d}.parquet"

    def shards(self) -> list[Path]:
        return sorted(self.path.glob("data-*.parquet"))


class _Timer:
    def __init__(self, timings: dict[str, float], label: str) -> None:
        self.timings, self.label = timings, label

    def __enter__(self) -> None:
        self.t = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.label] = round(self.timings.get(self.label, 0.0) + time.perf_counter() - self.t, 3)


def write_shard(path: Path, rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> pa.Table:
    """The rows as one Parquet shard (written whole or not at all); the table written."""
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_write(path, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
    return table


def read_shards(paths: Iterable[Path], columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=1024):
            yield from batch.to_pylist()


def read_table(stage_dir: Path, columns: list[str] | None = None) -> pa.Table:
    paths = sorted(Path(stage_dir).glob("data-*.parquet"))
    if not paths:
        raise Phi1Error(f"{stage_dir}: no data (has the stage run?)")
    return pa.concat_tables(pq.read_table(p, columns=columns) for p in paths)


def require_complete(run_dir: Path, name: str) -> dict[str, Any]:
    """The manifest of an earlier stage this one reads, or one clear error saying what to run first."""
    path = Path(run_dir) / name / "manifest.json"
    try:
        m = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise Phi1Error(f"{path.parent}: stage {name!r} has not run in this run directory") from None
    if m.get("status") != "complete":
        raise Phi1Error(f"{path.parent}: stage {name!r} did not finish; run it again")
    return m


def save_text(path: Path, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text)
