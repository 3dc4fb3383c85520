"""`phi1 eval --benchmark problems --problems my.jsonl`: a user's own problems, as the phi-1 paper's 50 new,
unconventional ones. A row holds `task_id` and `prompt` (the code a completion continues: a signature and
docstring), and optionally `tests` (a program, or a list of statements, run after prompt + completion; may
call `check(entry_point)` if it defines `check`), `entry_point` and `canonical_solution`. A problem without
tests is graded only (`--grade`): it has no pass@k."""

from __future__ import annotations

from pathlib import Path

from phi1.errors import Phi1Error
from phi1.evaluate.benchmarks import HUMANEVAL_STOP, Benchmark, Problem
from phi1.records import read_jsonl
from phi1.sandbox import Limits

NAME = "problems"


def load_own_problems(path: Path) -> Benchmark:
    problems: dict[str, Problem] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        for name in ("task_id", "prompt"):
            if not isinstance(row.get(name), str) or not row[name]:
                raise Phi1Error(f"{where}: field {name!r} must be a non-empty string")
        tests = row.get("tests") or []
        if isinstance(tests, str):
            tests = [tests]
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise Phi1Error(f"{where}: field 'tests' must be a string or a list of strings")
        if row["task_id"] in problems:
            raise Phi1Error(f"{where}: task_id {row['task_id']!r} appears twice")
        stages = ("\n".join(tests) + "\n",) if tests else ()
        entry, reference = str(row.get("entry_point") or ""), str(row.get("canonical_solution") or "")
        problems[row["task_id"]] = Problem(row["task_id"], row["prompt"], entry, reference, stages)
    if not problems:
        raise Phi1Error(f"{path}: no problems")
    bench = Benchmark(NAME, problems, HUMANEVAL_STOP, Limits(timeout_s=10.0), source=str(path))
    bench.metrics = {NAME: 1}
    return bench


def tested(bench: Benchmark) -> set[str]:
    """The problems that have tests (the others are graded only)."""
    return {t for t, p in bench.problems.items() if p.tests}
