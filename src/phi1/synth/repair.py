"""A repair request: an exercise that failed its tests, or whose tests are weak, goes back to the teacher
with the task it was written for, its answer and what went wrong (the failing statement and its error, or
surviving mutants as diffs), asking for a fixed solution or stronger tests (`phi1/prompts/repair.md`).
The request is cached like any other: the same failure asks the same question."""

from __future__ import annotations

from phi1 import prompts
from phi1.synth.verify import Check
from phi1.teacher import Request

# What a repair round can fix; an answer that does not parse or a program the sandbox killed cannot be shown.
REPAIRABLE = frozenset({"failed_tests", "error", "timeout", "weak_tests"})
SURVIVORS_SHOWN = 2


def repair_request(task: Request, code: str, tests: str, check: Check, min_score: float) -> Request:
    """The repair of an exercise written for `task` (same sample index and sampling parameters)."""
    problem, details = what_went_wrong(check, min_score)
    answer = f"```python\n{code.rstrip()}\n```\n\n```python\n{tests.rstrip()}\n```"
    task_text = task.messages[-1][1] if task.messages else task.text
    text = prompts.render("repair", problem=problem, task=task_text, answer=answer, details=details)
    return Request.chat(text, params=task.params, sample=task.sample)


def what_went_wrong(check: Check, min_score: float) -> tuple[str, str]:
    """(one line, the details) of why `check` is not good enough."""
    if check.status != "passed":
        return "it does not pass its own tests.", check.problem
    score = check.score
    assert score is not None and score.mutation_score is not None  # a passing exercise is repaired when weak
    line = (
        f"its tests are weak: they reject only {score.killed} of {score.run} slightly wrong versions of the "
        f"solution (mutation score {score.mutation_score:.2f}, at least {min_score:g} needed)."
    )
    shown = score.survivors[:SURVIVORS_SHOWN]
    diffs = "\n\n".join(f"```diff\n{s['diff']}\n```" for s in shown)
    return line, f"Every test still passes when the solution is changed like this:\n\n{diffs}"
