"""What every section of the report uses: manifests read through `phi1.manifests`, markdown tables, links
to the manifest a number came from, and figures saved the same way."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from phi1 import manifests


def manifest(run_dir: Path, name: str) -> Any:
    return manifests.read(run_dir, name)


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A markdown table; numbers with thousands separators, empty cells as '-'."""

    def cell(v: Any) -> str:
        if v is None or v == {} or v == "":
            return "-"
        if isinstance(v, dict):
            return ", ".join(f"{k} {cell(x)}" for k, x in v.items())
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return out + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows] + [""]


def metrics_rows(run_dir: Path, phase: str) -> list[dict[str, Any]]:
    path = run_dir / phase / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def link(name: str) -> str:
    return f"[{name}/manifest.json]({name}/manifest.json)"


def save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def untrusted(text: str, limit: int = 160) -> str:
    """Model- or corpus-written text as one table cell: HTML and markdown's link and code syntax escaped (so
    nothing in it renders as a tag, a link or a cell boundary), whitespace folded, cut at `limit` characters."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    out = html.escape(flat, quote=True)
    for ch, entity in (("|", "&#124;"), ("`", "&#96;"), ("[", "&#91;"), ("]", "&#93;"), ("*", "&#42;"),
                       ("_", "&#95;"), ("\\", "&#92;")):  # fmt: skip
        out = out.replace(ch, entity)
    return out
