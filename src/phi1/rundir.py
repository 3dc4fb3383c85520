"""The run directory: one folder per stage, each with Parquet shards and a `manifest.json`.

A stage's cache key is derived from its declaration (`phi1.steps`, `phi1.keys`): the config fields it reads,
the files they name, its inputs' keys and its format version, so changing one redoes that stage and
everything after it, and nothing else. A stage whose manifest says `complete` with
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
from phi1.config import Config
from phi1.errors import Phi1Error
from phi1.keys import KeyParts, changes, config_changes, key_parts
from phi1.manifests import read as read_manifest
from phi1.progress import console
from phi1.records import atomic_write, write_json
from phi1.steps import STEPS

TEACHER_CACHE = "teacher-cache.sqlite"  # a run's teacher answers, unless teacher.cache_path says elsewhere


def stage_key(section: Any, inputs: Iterable[str] = ()) -> str:
    """A stable hash of a folder's settings and its inputs' keys, for folders that no run config declares
    (an ablation's own token sets); every stage of the recipe derives its key with `open_step`."""
    section = section.result_fields() if hasattr(section, "result_fields") else section
    blob = json.dumps({"config": section, "inputs": sorted(inputs), "format": 1}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def open_step(run_dir: Path, folder: str, config: Config) -> Stage:
    """The folder of a declared step (`phi1.steps.STEPS`) with its key derived from the declaration: the
    config fields it reads, the files they name, its templates, the keys of its inputs as they are on disk
    (required ones must be complete; optional ones count where they are) and its format version."""
    step = STEPS[folder]
    inputs: dict[str, str | None] = {name: require_complete(run_dir, name)["cache_key"] for name in step.inputs}
    for name in step.optional:
        m = read_manifest(run_dir, name)
        inputs[name] = m["cache_key"] if m else None
    parts = key_parts(config, *step.declared(config), inputs, step.format)
    return Stage(run_dir, folder, parts.key(folder), parts)


def as_stage(run_dir: Path, folder: str, key: str | Stage) -> Stage:
    """A step's folder from the key its caller derived (`open_step`), or from a key given whole."""
    return key if isinstance(key, Stage) else Stage(run_dir, folder, key)


class Stage:
    """One stage's folder: its manifest, shards and timings. State is real here: the manifest on disk."""

    def __init__(self, run_dir: Path, name: str, key: str, parts: KeyParts | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.name = name
        self.key = key
        self.parts = parts  # what the key hashes (None: a key given whole)
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
        """Whether the folder holds training to guard: a step checkpoint, or a final model that trained. A
        final model of no steps is a base taken as it is (`pretrain.max_steps: 0`), made again in a moment."""
        if any(self.path.glob("checkpoints/step-*")):
            return True
        return (self.path / "final" / "config.json").exists() and (self.manifest() or {}).get("steps") != 0

    def changes(self, config: Any, inputs: dict[str, str]) -> list[str]:
        """What differs from the run that left this folder: config fields that decide the result, the files
        they name, templates, inputs, or the step's format version."""
        m = self.manifest() or {}
        if self.parts is not None:
            return changes(m.get("derived_from"), self.parts) or ["its key"]
        old = m.get("config")
        excluded = getattr(config, "EXECUTION_ONLY", frozenset())
        if isinstance(old, dict):
            old = {k: v for k, v in old.items() if k not in excluded}
        new = config.result_fields() if hasattr(config, "result_fields") else config
        out = config_changes(old, new)
        out += [f"input {name} changed" for name in sorted(inputs) if m.get("inputs", {}).get(name) != inputs[name]]
        return out or ["phi1's format of the stage"]

    def settings_changed(self) -> bool:
        """Whether a stale folder differs in what a user can set back (config, files, inputs), not only in
        phi1's own format (which no setting restores): its checkpoints are kept for the user then."""
        if self.parts is None:
            return True
        old = (self.manifest() or {}).get("derived_from") or {}
        now = self.parts.as_dict()
        return bool(old) and any(old.get(k) != now[k] for k in ("config", "files", "templates", "inputs"))

    def begin(self, config: Any, inputs: dict[str, str], force: bool = False) -> None:
        """Start (or resume) the stage. Work left by a run with another key is thrown away and the changed
        fields are named, except checkpoints: a folder holding them is deleted only with `force`."""
        m = self.manifest()
        stale = m is not None and m.get("cache_key") != self.key
        if stale:  # said whether the stage resumes or always redoes its work whole (force)
            changed = "; ".join(self.changes(config, inputs))
            if not force and self.holds_checkpoints() and self.settings_changed():
                raise Phi1Error(
                    f"{self.path}: the {self.name} settings changed ({changed}); it holds training checkpoints, "
                    "which phi1 deletes only when told: restore the old values, use another --run-dir, or start "
                    f"the stage over with `phi1 run --from {self.name}` (`phi1 {self.name} --force`)"
                )
            console.print(f"{self.name}: {changed}: redoing it")
        if force or stale:
            shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self._start = time.perf_counter()
        self._write(
            {
                "stage": self.name,
                "cache_key": self.key,
                "status": "running",
                "inputs": self.parts.inputs if self.parts is not None else inputs,
                "config": config.model_dump(mode="json") if hasattr(config, "model_dump") else config,
                **({"format": self.parts.format, "derived_from": self.parts.as_dict()} if self.parts else {}),
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

    def mark_complete(self, **fields: Any) -> dict[str, Any]:
        """Say that a folder that was filled whole by its caller (an ablation's own token set) is complete
        with this key."""
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = {"stage": self.name, "cache_key": self.key, "status": "complete", **fields}
        self._write(manifest)
        return manifest

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
