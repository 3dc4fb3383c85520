"""The corpus stage: read a raw corpus once into Parquet shards (id, text, source, size), counting what
could not be read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from phi1.config import Config
from phi1.curate.readers import SkipCounter, corpus_kind, iter_corpus
from phi1.progress import console
from phi1.records import content_id
from phi1.rundir import open_step, write_shard

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("n_bytes", pa.int64()),
        ("n_lines", pa.int64()),
    ]
)


def build_corpus(run_dir: Path, config: Config, force: bool = False) -> dict[str, Any]:
    cfg = config.corpus
    stage = open_step(run_dir, "corpus", config)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, {}, force=True)  # reading is cheap next to everything after it: redo whole
    skipped = SkipCounter()
    rows: list[dict[str, Any]] = []
    shard = read = total_bytes = 0
    with stage.timed("read_s"), console.status("reading the corpus") as status:
        docs = iter_corpus(
            corpus_kind(cfg.kind, cfg.path),
            cfg.path,
            skipped,
            cfg.glob,
            cfg.text_field,
            cfg.max_bytes,
            cfg.hf_data_dir,
            cfg.hf_split,
            cfg.hf_streaming,
        )
        for doc in docs:
            n_bytes = len(doc.text.encode("utf-8", "surrogatepass"))
            rows.append(
                {
                    "id": content_id(doc.text),
                    "text": doc.text,
                    "source": doc.source,
                    "n_bytes": n_bytes,
                    "n_lines": doc.text.count("\n") + 1,
                }
            )
            read += 1
            total_bytes += n_bytes
            if len(rows) >= cfg.shard_size:
                write_shard(stage.shard_path(shard), rows, SCHEMA)
                shard, rows = shard + 1, []
                status.update(f"reading the corpus: {read} documents")
            if cfg.max_files is not None and read >= cfg.max_files:
                break
    if rows or shard == 0:
        write_shard(stage.shard_path(shard), rows, SCHEMA)
    return stage.finish(
        counts={"documents": read, "bytes": total_bytes, "skipped": dict(skipped), "shards": len(stage.shards())},
        skipped_examples=skipped.examples,
        source={"kind": corpus_kind(cfg.kind, cfg.path), "path": cfg.path},
    )
