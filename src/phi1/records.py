"""Reading and writing records: JSONL (plain, .gz, .zst) with errors that name file and line, writes that
never leave a half-written file behind under the final name, and content ids. Code corpora are read by
`phi1.curate.readers`."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from phi1.errors import Phi1Error


def open_text(path: str | Path) -> IO[str]:
    """Open a text file, decompressing .gz and .zst transparently."""
    path = Path(path)
    if not path.exists():
        raise Phi1Error(f"{path}: no such file")
    if path.is_dir():
        raise Phi1Error(f"{path}: is a folder, expected a file")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    if path.suffix == ".zst":
        import zstandard

        raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True)
        return io.TextIOWrapper(raw, encoding="utf-8")
    return path.open("r", encoding="utf-8")


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line; a bad line raises naming file:line."""
    with open_text(path) as fh:
        lineno = 0
        try:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise Phi1Error(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(obj, dict):
                    raise Phi1Error(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                yield lineno, obj
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError) as exc:
            raise Phi1Error(f"{path}:{lineno + 1}: cannot be read ({exc})") from None


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path` and move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_write(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def content_id(text: str) -> str:
    """A stable id from the content: the same text gets the same id in every run."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]
