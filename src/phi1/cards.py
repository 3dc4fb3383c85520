"""Dataset cards: a README.md in every dataset folder, saying what is in it and how it was made."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from phi1.rundir import save_text

BYTES_PER_TOKEN = 3.5  # a rough figure for code and English under a code BPE


class CardStats:
    """What a card says of a dataset, gathered shard by shard so that no stage holds the dataset for it:
    records, bytes, the distribution of some columns, and a few example rows (from the first shard that has
    any)."""

    def __init__(self, columns: tuple[str, ...] = (), examples: int = 2) -> None:
        self.columns = columns
        self.wanted = examples
        self.records = 0
        self.n_bytes = 0
        self.counts: dict[str, Counter[Any]] = {c: Counter() for c in columns}
        self.examples: list[dict[str, Any]] = []

    def add(self, rows: list[dict[str, Any]] | pa.Table) -> None:
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
        if not len(table):
            return
        self.records += len(table)
        self.n_bytes += int(pc.sum(pc.binary_length(table.column("text").cast(pa.binary()))).as_py() or 0)
        for column in self.columns:
            for item in pc.value_counts(table.column(column)).to_pylist():
                self.counts[column][item["values"]] += item["counts"]
        if not self.examples and self.wanted:
            step = max(1, len(table) // self.wanted)
            self.examples = table.select(["text"]).take(list(range(0, len(table), step))[: self.wanted]).to_pylist()


def write_card(folder: Path, title: str, description: str, stats: CardStats, manifest: dict[str, Any]) -> None:
    lines = [
        f"# {title}",
        "",
        description,
        "",
        "| | |",
        "| --- | --- |",
        f"| records | {stats.records:,} |",
        f"| size | {stats.n_bytes / 1e6:.2f} MB |",
        f"| tokens (approx., {BYTES_PER_TOKEN} bytes/token) | {int(stats.n_bytes / BYTES_PER_TOKEN):,} |",
        f"| stage cache key | `{manifest.get('cache_key', '')}` |",
        "",
    ]
    counts = manifest.get("counts")
    if counts:
        lines += ["## Counts", "", "```", *(f"{k}: {v}" for k, v in counts.items()), "```", ""]
    for column, dist in stats.counts.items():
        if not dist:
            continue
        lines += [f"## {column} ({len(dist)} distinct)", "", "| value | records |", "| --- | --- |"]
        lines += [f"| {value} | {n} |" for value, n in dist.most_common(15)]
        if len(dist) > 15:
            lines.append(f"| ... {len(dist) - 15} more | |")
        lines.append("")
    if stats.examples:
        lines += ["## Examples", ""]
        for r in stats.examples:
            text = r["text"] if len(r["text"]) < 1500 else r["text"][:1500] + "\n..."
            lines += ["````", text.rstrip(), "````", ""]
    save_text(folder / "README.md", "\n".join(lines))
