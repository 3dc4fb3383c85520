"""The benchmark problems decontamination checks against: HumanEval and MBPP (phi1's shipped copies, or
the user's), and any extra JSONL files of problems."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from phi1.data import benchmark_file, mbpp_entry_point
from phi1.errors import Phi1Error
from phi1.records import read_jsonl


@dataclass(frozen=True)
class BenchmarkProblem:
    benchmark: str
    task_id: str
    prompt: str  # the natural-language part (docstring / problem text)
    solution: str  # the reference code
    entry_point: str = ""  # for execution matching: the function the tests call ...
    test: str = ""  # ... and the tests, a program run after it


def load_benchmark_problems(
    humaneval: bool = True, mbpp: bool = True, mbpp_path: str | None = None, extra: Sequence[str] = ()
) -> list[BenchmarkProblem]:
    """HumanEval and MBPP (all 974 problems: any may leak) from phi1's shipped copies or `mbpp_path`, and
    any `extra` JSONL files."""
    problems: list[BenchmarkProblem] = []
    if humaneval:
        for _, row in read_jsonl(benchmark_file("humaneval")):
            entry = row["entry_point"]
            solution = row["prompt"] + row["canonical_solution"]
            test = f"{row['test']}\ncheck({entry})\n"
            problems.append(BenchmarkProblem("humaneval", row["task_id"], row["prompt"], solution, entry, test))
    if mbpp:
        mbpp_path = mbpp_path or str(benchmark_file("mbpp"))
        if not Path(mbpp_path).exists():
            raise Phi1Error(f"clean.mbpp_path: {mbpp_path}: no such file")
        for lineno, row in read_jsonl(mbpp_path):
            if "text" not in row or "code" not in row:
                raise Phi1Error(f"{mbpp_path}:{lineno}: an MBPP row needs 'text' and 'code'")
            tests = list(row.get("test_list") or [])
            entry = mbpp_entry_point(tests[0]) if tests else ""
            test = "\n".join([row.get("test_setup_code") or "", *tests]) + "\n"
            tid = f"MBPP/{row.get('task_id', lineno)}"
            problems.append(BenchmarkProblem("mbpp", tid, row["text"], row["code"], entry, test))
    for path in extra:
        name = Path(path).name.split(".")[0]
        for lineno, row in read_jsonl(path):
            prompt = row.get("prompt", row.get("text"))
            code = row.get("canonical_solution", row.get("code"))
            if prompt is None or code is None:
                raise Phi1Error(f"{path}:{lineno}: needs prompt (or text) and canonical_solution (or code)")
            if "canonical_solution" in row and "prompt" in row:
                code = row["prompt"] + row["canonical_solution"]
            problems.append(BenchmarkProblem(name, str(row.get("task_id", f"{name}/{lineno}")), prompt, code))
    return problems
