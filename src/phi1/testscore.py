"""`phi1 testscore`: how strong a dataset's tests are, as the mutation score of each (solution, tests) pair
(`phi1.mutation`): a run's exercises, a JSONL or Parquet file, or a benchmark's own tests on its canonical
solutions. Writes `scores.jsonl` (one row per problem), `summary.json` and `histogram.png` under `--out`.

For HumanEval+ the tests are EvalPlus's check on the base inputs, then on the plus inputs: a mutant is killed
when any output differs from the canonical one (`atol` included); `mean_mutation_score_base` is the score of
the base inputs alone on the same mutants.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi1.errors import Phi1Error
from phi1.mutation.score import Score, Settings, Target, score_all
from phi1.progress import progress_bar
from phi1.records import read_jsonl, write_json, write_jsonl
from phi1.sandbox import Limits, Mode, Sandbox

FORMAT = 1


@dataclass(frozen=True)
class Dataset:
    name: str
    targets: list[Target]
    limits: Limits
    stages: tuple[str, ...] = ("tests",)  # what each test stage is called in the summary


def benchmark_dataset(name: str, sandbox: Sandbox, out: Path, limit: int | None = None) -> Dataset:
    """A benchmark's canonical solutions and own tests (HumanEval+: its references computed once, kept in
    `out/references.json`)."""
    from phi1.evaluate import benchmarks

    bench = benchmarks.load(name)
    problems = list(bench.problems.values())[:limit]
    refs = benchmarks.References(bench, sandbox, out / "references.json") if name == "humaneval+" else None
    targets = []
    for p in problems:
        setup = refs.setup_stage(p.task_id) if refs is not None else p.setup
        lines = p.prompt.count("\n") + (0 if p.prompt.endswith("\n") or not p.prompt else 1)
        targets.append(Target(p.task_id, p.prompt + p.reference, p.tests, (setup,) if setup else (), lines + 1))
    if refs is not None:
        refs.save()
    stages = ("base", "plus") if name == "humaneval+" else ("tests",)
    return Dataset(name, targets, bench.limits, stages)


def file_dataset(path: Path) -> Dataset:
    """(solution, tests) rows from a JSONL or Parquet file, or every Parquet shard of a folder (a run's
    `exercises/`). A row has `tests` (a string, or a list run one after another) and either `code` (the whole
    solution) or `prompt` + `solution` (only the solution mutates); `id` or `task_id` names it."""
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        if not files:
            raise Phi1Error(f"{path}: no .parquet shards in this folder")
        rows = [(f"{f}:{i + 1}", r) for f in files for i, r in enumerate(_parquet_rows(f))]
    elif path.suffix == ".parquet":
        rows = [(f"{path}:{i + 1}", r) for i, r in enumerate(_parquet_rows(path))]
    else:
        rows = [(f"{path}:{n}", r) for n, r in read_jsonl(path)]
    if not rows:
        raise Phi1Error(f"{path}: no rows")
    return Dataset(path.name, [_row_target(where, row) for where, row in rows], Limits(timeout_s=10.0))


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several kinds for a damaged file
        raise Phi1Error(f"{path}: not a readable Parquet file ({exc})") from None


def _row_target(where: str, row: dict[str, Any]) -> Target:
    tests = row.get("tests")
    if isinstance(tests, str):
        tests = [tests]
    if not tests or not all(isinstance(t, str) for t in tests):
        raise Phi1Error(f"{where}: field 'tests' must be a string or a list of strings")
    prompt = row.get("prompt") or ""
    if row.get("code"):
        code, first = row["code"], 1
    elif isinstance(row.get("solution"), str):
        code, first = prompt + row["solution"], prompt.count("\n") + 1
    else:
        raise Phi1Error(f"{where}: needs field 'code', or 'prompt' and 'solution'")
    rid = str(row.get("id") or row.get("task_id") or where)
    return Target(rid, code, tuple(tests), first_line=first)


def run_testscore(dataset: Dataset, sandbox: Sandbox, out: Path, settings: Settings) -> dict[str, Any]:
    """Score every target, write scores.jsonl, summary.json and histogram.png, return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    scores: list[Score] = []
    with progress_bar(len(dataset.targets), "mutation testing", unit="problems") as advance:
        for score in score_all(sandbox, dataset.targets, settings, dataset.limits):
            scores.append(score)
            advance(1)
    write_jsonl(out / "scores.jsonl", (_row(s, dataset) for s in scores))
    summary = summarize(scores, dataset, settings)
    write_json(out / "summary.json", summary)
    histogram([s.mutation_score for s in scores], out / "histogram.png", f"{dataset.name}: mutation scores")
    return summary


def _row(score: Score, dataset: Dataset) -> dict[str, Any]:
    row = score.as_row()
    row["killed_at"] = dict(zip(dataset.stages, score.killed_at, strict=True))
    if len(dataset.stages) > 1:
        row[f"mutation_score_{dataset.stages[0]}"] = score.score_at(0)
    return row


def summarize(scores: list[Score], dataset: Dataset, settings: Settings) -> dict[str, Any]:
    scored = [s for s in scores if s.mutation_score is not None]
    values = [s.mutation_score for s in scored]
    summary: dict[str, Any] = {
        "dataset": dataset.name,
        "problems": len(scores),
        "scored": len(scored),
        "reference_failed": sum(s.reference != "passed" for s in scores),
        "mean_mutation_score": statistics.fmean(values) if values else None,  # type: ignore[arg-type]
        "median_mutation_score": statistics.median(values) if values else None,  # type: ignore[type-var]
        "all_killed": sum(v == 1.0 for v in values),
        "mutants": sum(s.mutants for s in scores),
        "run": sum(s.run for s in scores),
        "killed": sum(s.killed for s in scores),
        "survived": sum(s.survived for s in scores),
        "timeout": sum(s.timeout for s in scores),
        "invalid": sum(s.invalid for s in scores),
        "settings": settings.identity(),
        "format": FORMAT,
    }
    if len(dataset.stages) > 1:
        base = [s.score_at(0) for s in scored]
        first = dataset.stages[0]
        summary[f"mean_mutation_score_{first}"] = statistics.fmean(base) if base else None  # type: ignore[arg-type]
        summary[f"stronger_than_{first}"] = sum(s.killed_at[0] < s.killed for s in scored)
    return summary


def histogram(values: list[float | None], path: Path, title: str) -> None:
    """Mutation scores in ten bins, the unscored (no mutant ran) counted in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [v for v in values if v is not None]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(scored, bins=[i / 10 for i in range(11)], color="#4c72b0", edgecolor="white")
    ax.set_xlabel("mutation score (killed / mutants run)")
    ax.set_ylabel("count")
    ax.set_title(f"{title} (n={len(scored)}, unscored {len(values) - len(scored)})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_line(summary: dict[str, Any]) -> str:
    mean = summary["mean_mutation_score"]
    text = f"{summary['dataset']}: mean mutation score {mean:.3f}" if mean is not None else "no score"
    if "mean_mutation_score_base" in summary and summary["mean_mutation_score_base"] is not None:
        text += f" (base inputs alone {summary['mean_mutation_score_base']:.3f}"
        text += f"; plus stronger on {summary['stronger_than_base']} of {summary['scored']})"
    return (
        text + f"; {summary['killed']} killed, {summary['survived']} survived, {summary['timeout']} timed out, "
        f"{summary['invalid']} invalid; {summary['reference_failed']} references failed their tests"
    )


def open_sandbox(mode: Mode, workers: int | None) -> Sandbox:
    return Sandbox(workers or Sandbox.default_workers(), mode)
