"""A benchmark row (as its own file writes it) to a `Case` and back, for HumanEval, HumanEval+ and MBPP: a
perturbed problem is written in its benchmark's own format, so any harness that reads the benchmark can run it."""

from __future__ import annotations

from phi1.data import mbpp_entry_point
from phi1.evaluate.benchmarks import mbpp_prompt
from phi1.evaluate.perturb.case import Case


def case_of(benchmark: str, row: dict) -> Case:
    if benchmark == "mbpp":
        tests = list(row["test_list"])
        prompt = row.get("prompt") or mbpp_prompt(row["text"], tests[0] if tests else "")
        setup = row.get("test_setup_code") or ""
        return Case(
            prompt, row.get("completion", row["code"]), (*tests, setup), mbpp_entry_point(tests[0]) if tests else ""
        )
    tests = (row["test"],) if benchmark == "humaneval" else ()
    return Case(row["prompt"], row["canonical_solution"], tests, row["entry_point"])


def row_of(benchmark: str, row: dict, case: Case) -> dict:
    """`row` with the case's prompt, solution and tests. MBPP's `code` becomes the whole program (the prompt,
    a docstring and maybe partial code, then the completion), `prompt` and `completion` are added."""
    out = dict(row)
    if benchmark == "mbpp":
        out.update(prompt=case.prompt, completion=case.reference, code=case.prompt + case.reference,
                   test_list=list(case.tests[:-1]), test_setup_code=case.tests[-1])  # fmt: skip
        return out
    out.update(prompt=case.prompt, canonical_solution=case.reference, entry_point=case.entry)
    if benchmark == "humaneval":
        out["test"] = case.tests[0]
    return out
