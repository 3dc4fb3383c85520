"""Dataset cards: a README.md in every dataset folder, saying what is in it and how it was made."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from phi1.rundir import save_text

BYTES_PER_TOKEN = 3.5  # a rough figure for code and English under a code BPE


def write_card(
    folder: Path,
    title: str,
    description: str,
    rows: list[dict[str, Any]],
    manifest: dict[str, Any],
    seed_columns: tuple[str, ...] = (),
    examples: int = 2,
    totals: tuple[int, int] | None = None,
) -> None:
    """`rows`: the dataset, or (with `totals` = (records, bytes) of the whole) a part of it to describe."""
    n_bytes = sum(len(r["text"].encode("utf-8", "surrogatepass")) for r in rows)
    n_records = len(rows)
    if totals is not None:
        n_records, n_bytes = totals
    lines = [
        f"# {title}",
        "",
        description,
        "",
        "| | |",
        "| --- | --- |",
        f"| records | {n_records:,} |",
        f"| size | {n_bytes / 1e6:.2f} MB |",
        f"| tokens (approx., {BYTES_PER_TOKEN} bytes/token) | {int(n_bytes / BYTES_PER_TOKEN):,} |",
        f"| stage cache key | `{manifest.get('cache_key', '')}` |",
        "",
    ]
    counts = manifest.get("counts")
    if counts:
        lines += ["## Counts", "", "```", *(f"{k}: {v}" for k, v in counts.items()), "```", ""]
    for column in seed_columns:
        dist = Counter(r.get(column) for r in rows)
        if not dist:
            continue
        lines += [f"## {column} ({len(dist)} distinct)", "", "| value | records |", "| --- | --- |"]
        lines += [f"| {value} | {n} |" for value, n in dist.most_common(15)]
        if len(dist) > 15:
            lines.append(f"| ... {len(dist) - 15} more | |")
        lines.append("")
    if rows and examples:
        lines += ["## Examples", ""]
        step = max(1, len(rows) // examples)
        for r in rows[::step][:examples]:
            text = r["text"] if len(r["text"]) < 1500 else r["text"][:1500] + "\n..."
            lines += ["````", text.rstrip(), "````", ""]
    save_text(folder / "README.md", "\n".join(lines))
