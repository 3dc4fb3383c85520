"""Reading code corpora (folders, JSONL, Parquet, Hugging Face datasets) with every unreadable document
counted by reason: what the corpus stage reads."""

from __future__ import annotations

import json
import sysconfig
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from phi1.errors import Phi1Error
from phi1.records import open_text


@dataclass(frozen=True)
class Document:
    text: str
    source: str  # file path, path:line, or dataset:index


def stdlib_path() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


class SkipCounter(Counter):
    """Records skipped, by reason; the first few of each reason are kept with where they were."""

    def __init__(self) -> None:
        super().__init__()
        self.examples: dict[str, list[str]] = {}

    def skip(self, reason: str, where: str) -> None:
        self[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(where)


def _check(raw: bytes, max_bytes: int) -> tuple[str | None, str | None]:
    """(text, None) or (None, reason)."""
    if len(raw) > max_bytes:
        return None, "oversized"
    if b"\0" in raw[:8192]:
        return None, "binary"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "non_utf8"
    if not text.strip():
        return None, "empty"
    return text, None


def _check_text(value: object, max_bytes: int) -> tuple[str | None, str | None]:
    if value is None:
        return None, "missing_field"
    if isinstance(value, bytes):
        return _check(value, max_bytes)
    if not isinstance(value, str):
        return None, "not_text"
    if len(value) > max_bytes or len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        return None, "oversized"
    if "\0" in value[:8192]:
        return None, "binary"
    if not value.strip():
        return None, "empty"
    return value, None


def corpus_kind(kind: str, path: str | None) -> str:
    if kind != "auto":
        return kind
    if path is None:
        return "stdlib"
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        # A saved Hugging Face dataset is a folder with dataset_info.json / state.json.
        return "hf" if (p / "dataset_info.json").exists() or (p / "state.json").exists() else "folder"
    if name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if not p.exists() and "/" in path and not path.startswith((".", "/")):
        return "hf"  # a hub dataset name such as bigcode/the-stack-dedup
    if not p.exists():
        raise Phi1Error(f"corpus.path: {path}: no such file or folder")
    raise Phi1Error(f"corpus.path: {path}: cannot tell its format; set corpus.kind")


def iter_corpus(
    kind: str,
    path: str | None,
    skipped: SkipCounter,
    glob: str = "**/*.py",
    text_field: str = "content",
    max_bytes: int = 1_000_000,
    hf_data_dir: str | None = None,
    hf_split: str = "train",
    hf_streaming: bool = True,
) -> Iterator[Document]:
    """Every readable document of a corpus. Unreadable ones are counted in `skipped` by reason (binary,
    non_utf8, empty, oversized, malformed, missing_field) and never stop the run."""
    kind = corpus_kind(kind, path)
    if kind in ("stdlib", "folder"):
        root = stdlib_path() if kind == "stdlib" else Path(path or ".")
        if not root.is_dir():
            raise Phi1Error(f"corpus.path: {root}: not a folder")
        files = sorted(p for p in root.glob(glob) if p.is_file())
        if kind == "stdlib":
            files = [f for f in files if "site-packages" not in f.parts and "dist-packages" not in f.parts]
        for file in files:
            try:
                if file.stat().st_size > max_bytes:
                    skipped.skip("oversized", str(file))
                    continue
                raw = file.read_bytes()
            except OSError:
                skipped.skip("unreadable", str(file))
                continue
            text, reason = _check(raw, max_bytes)
            if reason:
                skipped.skip(reason, str(file))
            else:
                yield Document(text, str(file.relative_to(root)) if kind == "stdlib" else str(file))
    elif kind == "jsonl":
        yield from _iter_jsonl_corpus(Path(path or ""), skipped, text_field, max_bytes)
    elif kind == "parquet":
        import pyarrow.parquet as pq

        file = Path(path or "")
        if not file.exists():
            raise Phi1Error(f"corpus.path: {file}: no such file")
        pf = pq.ParquetFile(file)
        if text_field not in pf.schema_arrow.names:
            raise Phi1Error(f"{file}: no column {text_field!r} (columns: {', '.join(pf.schema_arrow.names)})")
        index = 0
        for batch in pf.iter_batches(columns=[text_field], batch_size=1024):
            for value in batch.column(0).to_pylist():
                text, reason = _check_text(value, max_bytes)
                if reason:
                    skipped.skip(reason, f"{file}#{index}")
                else:
                    yield Document(text, f"{file}#{index}")
                index += 1
    elif kind == "hf":
        yield from _iter_hf(path or "", skipped, text_field, max_bytes, hf_data_dir, hf_split, hf_streaming)
    else:
        raise Phi1Error(f"corpus.kind: unknown kind {kind!r}")


def _iter_jsonl_corpus(path: Path, skipped: SkipCounter, text_field: str, max_bytes: int) -> Iterator[Document]:
    with open_text(path) as fh:
        lineno = 0
        while True:
            lineno += 1
            try:
                line = fh.readline()
            except UnicodeDecodeError:
                skipped.skip("non_utf8", f"{path}:{lineno}")
                break  # the decoder cannot resynchronise; the rest of the file is lost, and counted
            if not line:
                break
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                skipped.skip("malformed", f"{path}:{lineno}")
                continue
            if not isinstance(obj, dict):
                skipped.skip("malformed", f"{path}:{lineno}")
                continue
            text, reason = _check_text(obj.get(text_field), max_bytes)
            if reason:
                skipped.skip(reason, f"{path}:{lineno}")
            else:
                yield Document(text, f"{path}:{lineno}")


def _iter_hf(
    name: str, skipped: SkipCounter, text_field: str, max_bytes: int, data_dir: str | None, split: str, streaming: bool
) -> Iterator[Document]:
    try:
        import datasets
    except ImportError:
        raise Phi1Error("corpus.kind=hf needs the `datasets` package: pip install 'phi1[hf]'") from None
    if Path(name).is_dir() and ((Path(name) / "dataset_info.json").exists() or (Path(name) / "state.json").exists()):
        ds = datasets.load_from_disk(name)
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
    else:
        ds = datasets.load_dataset(name, data_dir=data_dir, split=split, streaming=streaming)
    for index, row in enumerate(ds):
        text, reason = _check_text(row.get(text_field), max_bytes)
        if reason:
            skipped.skip(reason, f"{name}#{index}")
        else:
            yield Document(text, f"{name}#{index}")
