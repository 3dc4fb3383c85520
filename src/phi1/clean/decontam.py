"""`phi1 decontam`: check any dataset of code against HumanEval, HumanEval+ and MBPP (and extra benchmark
files) with every contamination detector, execution included; one row per flagged (sample, problem)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from phi1.clean.detectors import Thresholds, names
from phi1.clean.detectors.llm_judge import Judge
from phi1.clean.driver import detect_texts
from phi1.clean.problems import load_benchmark_problems
from phi1.errors import Phi1Error
from phi1.records import read_jsonl, write_json, write_jsonl
from phi1.sandbox import Sandbox


def read_dataset(path: Path, text_field: str, id_field: str, kind: str = "exercise") -> list[dict[str, Any]]:
    """(id, text, kind) rows from a JSONL(.gz/.zst) or Parquet file, or a stage folder of Parquet shards;
    `kind` for rows that do not carry one."""
    if path.is_dir():
        files = sorted(path.glob("data-*.parquet")) or sorted(path.glob("*.parquet"))
        if not files:
            raise Phi1Error(f"{path}: no Parquet shards (data-*.parquet) in this folder")
        rows = [r for f in files for r in pq.read_table(f).to_pylist()]
        where = [f"{path}"] * len(rows)
    elif path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
        where = [f"{path}"] * len(rows)
    elif path.exists():
        pairs = list(read_jsonl(path))
        rows, where = [r for _, r in pairs], [f"{path}:{n}" for n, _ in pairs]
    else:
        raise Phi1Error(f"{path}: no such file or folder")
    out = []
    for k, (row, at) in enumerate(zip(rows, where, strict=True)):
        text = row.get(text_field)
        if not isinstance(text, str):
            raise Phi1Error(f"{at}: missing or non-string field {text_field!r} (choose another with --text-field)")
        out.append({"id": str(row.get(id_field, k)), "text": text, "kind": row.get("kind") or kind})
    if not out:
        raise Phi1Error(f"{path}: no samples")
    return out


def run_decontam(
    data: Path,
    out: Path,
    text_field: str = "text",
    id_field: str = "id",
    extra: list[str] | None = None,
    encoder: str | None = "minilm",
    thresholds: Thresholds | None = None,
    workers: int | None = None,
    kind: str = "exercise",
    judge: Judge | None = None,
) -> dict[str, Any]:
    start = time.perf_counter()
    thresholds = thresholds or Thresholds()
    samples = read_dataset(Path(data), text_field, id_field, kind)
    problems = load_benchmark_problems(True, True, None, extra or [])
    texts = [s["text"] for s in samples]
    with Sandbox(workers=workers or Sandbox.default_workers()) as sandbox:
        # The driver `phi1 clean` runs, on the dataset as it is (clean first removes duplicates).
        found, notes = detect_texts(texts, [s["kind"] for s in samples], tuple(problems), thresholds, sandbox,
                                    encoder, judge)  # fmt: skip
    rows = []
    for (i, j), m in sorted(found.items()):
        if not m.detectors:
            continue
        p = problems[j]
        rows.append({"id": samples[i]["id"], "benchmark": p.benchmark, "task_id": p.task_id,
                     "detectors": m.detectors, "scores": m.scores})  # fmt: skip
    per_detector = Counter(d for r in rows for d in r["detectors"])
    summary = {
        "data": str(data),
        "samples": len(samples),
        "flagged_samples": len({r["id"] for r in rows}),
        "flags": len(rows),
        "per_detector": {d: per_detector.get(d, 0) for d in names()},
        "per_benchmark": dict(Counter(r["benchmark"] for r in rows)),
        "problems_checked": dict(Counter(p.benchmark for p in problems)),
        "thresholds": vars(thresholds),
        "encoder": encoder,
        "llm_judge": {**notes.get("llm", {}), "k": judge.k if judge else None},
        "execution": notes.get("execution", {}),
        "wall_s": round(time.perf_counter() - start, 2),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)
    write_jsonl(out / "flags.jsonl", rows)
    write_json(out / "summary.json", summary)
    return summary
