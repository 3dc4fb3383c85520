"""Run completions against their benchmark's tests in the sandbox, and turn verdicts into scores."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from phi1.evaluate.benchmarks import Benchmark, References
from phi1.evaluate.generate import Sample
from phi1.evaluate.passk import mean_pass_at_k
from phi1.progress import progress_bar
from phi1.sandbox import STATUSES, Limits, Sandbox, Verdict


@dataclass(frozen=True)
class Result:
    task_id: str
    completion_id: int
    completion: str
    passed: bool
    status: str
    detail: str
    tests_passed: int

    def row(self, benchmark: Benchmark) -> dict:
        row = asdict(self)
        tests = row.pop("tests_passed")
        for column, needed in benchmark.columns.items():
            row[column] = tests >= needed
        return row


def execute(
    benchmark: Benchmark,
    samples: Sequence[Sample],
    sandbox: Sandbox,
    limits: Limits | None = None,
    references: Path | None = None,
) -> list[Result]:
    """Judge every sample; results come back in (task order, completion_id) order. Benchmarks that compare
    with reference outputs (HumanEval+) compute them once per problem, or read them from `references`."""
    order = {tid: i for i, tid in enumerate(benchmark.problems)}
    samples = sorted(samples, key=lambda s: (order[s.task_id], s.completion_id))
    refs = References(benchmark, sandbox, references)
    # Samples that share reference outputs (a problem's, and its perturbed variants' on HumanEval+).
    per_slot = Counter(benchmark.problems[s.task_id].reference_slot for s in samples)

    def judge(i: int) -> tuple[int, Verdict]:
        tid = samples[i].task_id
        shared = per_slot[benchmark.problems[tid].reference_slot] > 1
        program, own = refs.program(tid, samples[i].completion, shared=shared)
        verdict = None
        try:
            verdict = sandbox.run(program, replace(own, timeout_s=limits.timeout_s) if limits else own)
        finally:
            refs.found(tid, verdict)
        return i, verdict

    results: list[Result | None] = [None] * len(samples)
    statuses: Counter[str] = Counter()
    with (
        progress_bar(
            len(samples), f"testing {benchmark.name}", unit="samples", extra=lambda: f"passed {statuses['passed']}"
        ) as advance,
        ThreadPoolExecutor(max_workers=sandbox.workers) as pool,
    ):
        # Every problem's first sample before any second one: a later sample waits for the references its
        # first computes, and it should not hold a worker while other problems have work to do.
        first = _firsts([benchmark.problems[s.task_id].reference_slot for s in samples])
        futures = [pool.submit(judge, i) for i in sorted(range(len(samples)), key=lambda i: not first[i])]
        try:
            for future in as_completed(futures):
                i, verdict = future.result()
                results[i] = _result(samples[i], benchmark.problems[samples[i].task_id], verdict)
                statuses[verdict.status] += 1
                advance(1)
        finally:
            refs.save()
    return [r for r in results if r is not None]


def _firsts(slots: list[str]) -> list[bool]:
    """Whether each sample is the first of its reference slot."""
    seen: set[str] = set()
    out = []
    for slot in slots:
        out.append(slot not in seen)
        seen.add(slot)
    return out


def _result(s: Sample, problem: Any, verdict: Verdict) -> Result:
    detail = verdict.detail
    if verdict.failed_stage is not None:
        detail = f"{detail} ({problem.stage_name(verdict.failed_stage)})"
    return Result(
        s.task_id,
        s.completion_id,
        s.completion,
        verdict.passed,
        verdict.status,
        detail,
        problem.tests_passed(verdict.stages_passed),
    )


def summarize(benchmark: Benchmark, results: Sequence[Result], ks: Sequence[int], wall_s: float) -> dict:
    """pass@k per metric, counts per status, throughput."""
    per_task: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        per_task[r.task_id].append(r)
    pass_at: dict[str, dict[str, float]] = {}
    for metric, needed in benchmark.metrics.items():
        counts = [(len(rs), sum(r.tests_passed >= needed for r in rs)) for rs in per_task.values()]
        pass_at[metric] = mean_pass_at_k(counts, ks)
    status_counts = Counter(r.status for r in results)
    return {
        "benchmark": benchmark.name,
        "problems": len(benchmark.problems),
        "tasks_evaluated": len(per_task),
        "samples": len(results),
        "samples_per_task": {
            "min": min(map(len, per_task.values()), default=0),
            "max": max(map(len, per_task.values()), default=0),
        },
        "pass_at_k": pass_at,
        "status_counts": {s: status_counts.get(s, 0) for s in STATUSES},
        "wall_s": round(wall_s, 3),
        "samples_per_s": round(len(results) / wall_s, 2) if wall_s > 0 else None,
    }
