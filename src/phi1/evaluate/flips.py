"""Base vs finetuned on the same problems: which flipped each way, McNemar's exact test, and for each problem
that flipped to pass its nearest finetuning exercise with that pair's decontamination scores, so that a reader
can see whether a gain is learning or a leaked look-alike."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from phi1.clean.detectors.ast_match import ast_matches, sample_shapes, solution_shapes
from phi1.clean.detectors.ngram import ngrams
from phi1.clean.problems import load_benchmark_problems


def mcnemar_p(better: int, worse: int) -> float:
    """McNemar's exact test: two-sided binomial p of the discordant pairs (flips) under p = 0.5."""
    n = better + worse
    if n == 0:
        return 1.0
    k = min(better, worse)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def passed(results_path: Path) -> dict[str, bool]:
    """Per problem, whether its (first) completion passed: greedy evaluation has one."""
    out: dict[str, bool] = {}
    for line in results_path.read_text().splitlines():
        row = json.loads(line)
        if row.get("completion_id", 0) == 0:
            out[row["task_id"]] = bool(row["passed"])
    return out


def compare(base: dict[str, bool], finetuned: dict[str, bool]) -> dict[str, Any]:
    """The paired comparison over the problems both were judged on."""
    common = sorted(set(base) & set(finetuned))
    to_pass = [t for t in common if finetuned[t] and not base[t]]
    to_fail = [t for t in common if base[t] and not finetuned[t]]
    return {
        "problems": len(common),
        "base_passed": sum(base[t] for t in common),
        "finetuned_passed": sum(finetuned[t] for t in common),
        "to_pass": to_pass,
        "to_fail": to_fail,
        "mcnemar_p": round(mcnemar_p(len(to_pass), len(to_fail)), 6),
    }


def read_exercises(clean_dir: Path) -> list[dict[str, Any]]:
    """The exercises finetuning trained on: clean's kept exercises."""
    rows: list[dict[str, Any]] = []
    for shard in sorted(clean_dir.glob("data-*.parquet")):
        table = pq.read_table(shard, columns=["id", "text", "kind", "prompt"])
        rows += [r for r in table.to_pylist() if r["kind"] == "exercise"]
    return rows


def nearest_exercises(
    task_ids: list[str],
    benchmark: str,
    exercises: list[dict[str, Any]],
    encoder: str,
    ngram_n: int,
    ast_min_nodes: int,
    execution_twins: dict[str, int],
) -> dict[str, dict[str, Any]]:
    """For each problem, the exercise nearest by embedding (the encoder clean uses), with that pair's scores by
    the other detectors: AST similarity (tau), shared n-grams, and the problem's execution twins anywhere in
    the training data (clean's similarity table)."""
    if not task_ids or not exercises:
        return {}
    from phi1.clean.detectors.embedding import Vectors, unit

    by_id = {p.task_id: p for p in load_benchmark_problems(humaneval=True, mbpp=True) if p.benchmark == benchmark}
    problems = [by_id[t] for t in task_ids if t in by_id]
    vectors = Vectors(encoder, problems)
    cos = unit(vectors.encode([e["text"] for e in exercises])) @ vectors.bench.T  # [exercises, problems]
    out = {}
    for j, p in enumerate(problems):
        k = int(np.argmax(cos[:, j]))
        text = exercises[k]["text"]
        shapes = sample_shapes(text, "exercise", ast_min_nodes)
        theirs = solution_shapes(p.solution, p.entry_point, ast_min_nodes)
        taus = [tau for _, _, tau in ast_matches(shapes, theirs, 0.0, workers=1)]
        shared = ngrams(text, ngram_n) & (ngrams(p.prompt, ngram_n) | ngrams(p.solution, ngram_n))
        out[p.task_id] = {
            "exercise_id": exercises[k]["id"],
            "exercise_prompt": exercises[k]["prompt"] or text,
            "cosine": round(float(cos[k, j]), 4),
            "ast_tau": round(max(taus), 4) if taus else 0.0,
            f"shared_{ngram_n}grams": len(shared),
            "execution_twins": int(execution_twins.get(p.task_id, 0)),
        }
    return out


def similarity_rows(run_dir: Path) -> dict[str, dict[str, Any]] | None:
    """Clean's per-problem similarity table, by task id (None when clean did not write one)."""
    path = run_dir / "clean" / "benchmark_similarity.parquet"
    if not path.exists():
        return None
    return {r["task_id"]: r for r in pq.read_table(path).to_pylist()}
