"""What a run directory says about itself, read from its manifests and result files: each stage's state and
times, the funnel of counts (each with the records it counts, where they were kept), teacher usage, figures
and evaluation results. A missing or half-written stage is one line saying so, never an error page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# The pipeline's order, for display only (the stage registry itself is not imported: the viewer reads files).
ORDER = ("corpus", "annotations", "embeddings", "classifier", "filtered", "textbook", "exercises", "clean",
         "tokenizer", "tokens", "pretrain", "finetune", "eval")  # fmt: skip


@dataclass
class Stage:
    name: str
    manifest: dict[str, Any] | None
    problem: str = ""  # why the stage shows nothing: not run, incomplete, unreadable

    @property
    def seconds(self) -> float | None:
        m = self.manifest or {}
        try:
            start = datetime.fromisoformat(m["started"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(m["finished"].replace("Z", "+00:00"))
        except (KeyError, AttributeError, ValueError):
            return None
        return (end - start).total_seconds()

    @property
    def teacher(self) -> dict[str, Any] | None:
        t = (self.manifest or {}).get("teacher")
        return t if isinstance(t, dict) else None


@dataclass
class Count:
    label: str
    value: int
    link: str = ""  # the view of these records, where they were kept
    indent: int = 0


@dataclass
class Overview:
    stages: list[Stage]
    funnel: list[Count] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)


def read_manifest(path: Path) -> tuple[dict[str, Any] | None, str]:
    if not path.exists():
        return None, "not run"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"manifest.json unreadable ({type(e).__name__})"
    if not isinstance(m, dict):
        return None, "manifest.json is not an object"
    if m.get("status") != "complete":
        return m, f"incomplete (status {m.get('status')!r})"
    return m, ""


def stages(run_dir: Path) -> list[Stage]:
    found = {p.parent.name for p in run_dir.glob("*/manifest.json")}
    names = [n for n in ORDER] + sorted(found - set(ORDER))
    out = []
    for name in names:
        manifest, problem = read_manifest(run_dir / name / "manifest.json")
        out.append(Stage(name, manifest, problem))
    return out


def _counts(stage: Stage) -> dict[str, Any]:
    c = (stage.manifest or {}).get("counts")
    return c if isinstance(c, dict) else {}


def funnel(run_dir: Path, by_name: dict[str, Stage], n_records: dict[str, int]) -> list[Count]:
    """The counts from raw corpus to clean data, each linked to its records. `n_records`: the rows each record
    table holds (the number shown is the stage's own count where it keeps one)."""
    rows: list[Count] = []

    def add(label: str, table: str, query: str = "", value: int | None = None, indent: int = 0) -> None:
        """A count of records that `table` holds (linked; `value` where the query selects them), or, with a
        `value` and no query, a total the stage kept no records of (not linked)."""
        if table not in n_records:
            if value is not None:
                rows.append(Count(label, int(value), "", indent))
            return
        if value is not None and not query:
            rows.append(Count(label, int(value), "", indent))
            return
        rows.append(Count(label, int(n_records[table] if value is None else value), f"records/{table}{query}", indent))

    add("corpus files", "corpus")
    add("rated by the teacher", "annotations", indent=1)
    add("kept by the classifier", "filtered", indent=1)
    add("textbook sections", "textbook")
    ex = _counts(by_name["exercises"]) if "exercises" in by_name else {}
    if ex:
        add("exercises written", "exercises", value=ex.get("parsed", ex.get("requested", 0)))
    add("exercises verified and kept", "exercises", indent=1)
    for reason, n in sorted((ex.get("rejected") or {}).items()):
        rows.append(Count(f"rejected: {reason} (not kept as records)", int(n), "", 1))
    cl = _counts(by_name["clean"]) if "clean" in by_name else {}
    if cl:
        add("into clean", "clean", value=cl.get("in", 0))
        add("kept", "clean", indent=1)
        for reason, n in sorted((cl.get("removed") or {}).items(), key=lambda kv: -kv[1]):
            add(f"removed: {reason}", "removed", f"?f.reason={reason}", value=int(n), indent=1)
    add("benchmark look-alike flags", "flags")
    return rows


def figures(run_dir: Path) -> list[str]:
    folder = run_dir / "figures"
    return sorted(p.name for p in folder.glob("*.png") if p.is_file()) if folder.is_dir() else []


@dataclass
class EvalSet:
    model: str
    benchmark: str
    path: Path  # the folder with results.jsonl
    summary: dict[str, Any]


def eval_sets(run_dir: Path) -> list[EvalSet]:
    out = []
    for results in sorted((run_dir / "eval").glob("*/*/results.jsonl")):
        folder = results.parent
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):
            summary = {}
        out.append(EvalSet(folder.parent.name, folder.name, folder, summary))
    return out


def eval_rows(folder: Path) -> list[dict[str, Any]]:
    """One benchmark's per-problem results, as `phi1 eval` wrote them (a torn last line is skipped)."""
    rows = []
    for line in (folder / "results.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def comparison(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "eval" / "comparison.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return {}
