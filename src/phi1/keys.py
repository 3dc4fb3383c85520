"""Stage keys derived from a stage's declaration, never hand-picked.

A key hashes everything that changes a stage's output: every result field the stage declares it reads (a
whole section's fields minus its `EXECUTION_ONLY` ones, or single fields of other sections), what each
file-naming field points at (`config.Names`: a content hash, or a fingerprint for large inputs), the prompt
templates it renders, its inputs' keys and its format version. Nothing here knows any particular stage:
the declarations live in `phi1.steps`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from phi1.config import Config, Names, Section
from phi1.config_base import named_path

# Files at most this big are hashed whole even where a field asks for content; bigger ones (model weights
# inside a tokenizer folder) are fingerprinted, since hashing gigabytes on every run costs minutes.
CONTENT_HASH_MAX_BYTES = 64 * 2**20
PACKAGE_ROOT = Path(__file__).parent


@dataclass(frozen=True)
class KeyParts:
    """What a key hashes, kept in the manifest so that a changed key can name what changed."""

    config: dict[str, Any]
    files: dict[str, Any]
    templates: dict[str, str]
    inputs: dict[str, str | None]
    format: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "files": self.files,
            "templates": self.templates,
            "inputs": self.inputs,
            "format": self.format,
        }

    def key(self, step: str) -> str:
        blob = json.dumps({"step": step, **self.as_dict()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def key_parts(
    config: Config,
    reads: Iterable[str],
    templates: Iterable[str] = (),
    inputs: Mapping[str, str | None] | None = None,
    format_version: int = 1,
) -> KeyParts:
    """The parts of a key: `reads` names sections (`curate`), single fields (`evaluate.sandbox`) or top-level
    fields (`seed`) of `config`."""
    values: dict[str, Any] = {}
    files: dict[str, Any] = {}
    for name in reads:
        owner, field = _resolve(config, name)
        chosen = owner.result_fields() if field is None else {field: _field_value(owner, field, name)}
        values[name] = chosen if field is None else chosen[field]
        for fname in chosen:
            marker = names_marker(type(owner), fname)
            if marker is not None:
                label = name if field is not None else f"{name}.{fname}"
                files[label] = describe(getattr(owner, fname), marker)
    return KeyParts(values, files, {t: template_digest(t) for t in templates}, dict(inputs or {}), format_version)


def _resolve(config: Config, name: str) -> tuple[Section, str | None]:
    """(the section, the field or None for the whole section) that a `reads` entry names."""
    head, _, rest = name.partition(".")
    value = getattr(config, head, None)
    if value is None and head not in type(config).model_fields:
        raise ValueError(f"a stage declares it reads {name!r}: the config has no {head!r}")
    if isinstance(value, BaseModel):
        if rest and rest not in type(value).model_fields:
            raise ValueError(f"a stage declares it reads {name!r}: {head} has no field {rest!r}")
        return value, rest or None  # type: ignore[return-value]
    if rest:
        raise ValueError(f"a stage declares it reads {name!r}: {head} is not a section")
    return config, head


def _field_value(owner: Section, field: str, name: str) -> Any:
    if field in owner.EXECUTION_ONLY:
        raise ValueError(f"a stage declares it reads {name!r}, an execution-only field: no key may hold it")
    return owner.model_dump(mode="json", include={field})[field]


def names_marker(section: type[BaseModel], field: str) -> Names | None:
    """The `Names` marker of a field, if its value names a file or folder."""
    info = section.model_fields.get(field)
    if info is None:
        return None
    return next((m for m in info.metadata if isinstance(m, Names)), None)


def describe(value: Any, marker: Names) -> Any:
    """What a file-naming field's value points at, as the key holds it."""
    if isinstance(value, list | tuple):
        return [describe(v, marker) for v in value]
    if value is None:
        return None if marker.shipped is None else _shipped(marker.shipped)
    text = str(value)
    for prefix in marker.prefixes:
        text = text.removeprefix(prefix)
    path = named_path(text)
    if not path.exists():
        return None  # a hub name or a built-in choice: the name in the config is all there is
    return fingerprint(path) if marker.hash == "fingerprint" else content_digest(path)


def _shipped(where: str) -> str:
    if where == "<stdlib>":
        # The standard library is what this Python version ships: its files' mtimes are install times.
        return f"{platform.python_implementation()} {platform.python_version()}"
    return content_digest(PACKAGE_ROOT / where)


def content_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's relative paths and file hashes (big files: size and mtime)."""
    h = hashlib.sha256()
    for rel, file in _files(path):
        st = file.stat()
        h.update(f"{rel}\0{st.st_size}\0".encode())
        if st.st_size <= CONTENT_HASH_MAX_BYTES:
            with file.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(str(st.st_mtime_ns).encode())
    return h.hexdigest()[:16]


def fingerprint(path: Path) -> str:
    """A cheap stand-in for a content hash: every file's relative path, size and mtime."""
    h = hashlib.sha256()
    for rel, file in _files(path):
        st = file.stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [(path.name, path)]
    out = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            file = Path(root) / name
            out.append((file.relative_to(path).as_posix(), file))
    return out


def template_digest(name: str) -> str:
    from phi1 import prompts

    return hashlib.sha256(prompts.template(name).encode()).hexdigest()[:16]


def changes(old: Mapping[str, Any] | None, new: KeyParts) -> list[str]:
    """What differs between the parts of the key a folder was made with and the parts of the new key."""
    if not old:
        return [f"made before keys were derived from the stage's declaration (format 1 -> {new.format})"]
    out = []
    if old.get("format") != new.format:
        out.append(f"format {old.get('format')} -> {new.format}")
    out += config_changes(old.get("config", {}), new.config)
    out += [f"{name}: the file's content changed" for name in _differ(old.get("files", {}), new.files)]
    out += [f"prompt template {name!r} changed" for name in _differ(old.get("templates", {}), new.templates)]
    out += [f"input {name} changed" for name in _differ(old.get("inputs", {}), new.inputs)]
    return out


def _differ(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


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
