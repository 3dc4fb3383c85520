"""Verify an exercise in one sandbox program: its solution against its own tests (each top-level test
statement a stage of its own, so a failure names its assert) and then, in the same program, its tests
against mutants of the solution (`phi1.mutation`), so the one run says whether the exercise passes and how
strong its tests are. A program costs its interpreter's start-up more than its mutants: scoring in the same
program is what keeps it cheap (`benchmarks/testscore.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from phi1 import pysource
from phi1.mutation.mutants import mutants
from phi1.mutation.score import (
    GUARD_TIMEOUT,
    Score,
    Settings,
    Target,
    finish_score,
    guard_stage,
    program_limits,
    runner_call,
    seed_of,
)
from phi1.sandbox import Limits, Sandbox, Status, Verdict


@dataclass(frozen=True)
class Check:
    status: Status  # the exercise against its own tests: passed, failed, error, timeout or killed
    problem: str  # what went wrong, in words a teacher can act on ("" when it passed)
    score: Score | None  # its tests' mutation score (None: scoring is off, or the exercise did not pass)


def check_exercise(
    sandbox: Sandbox, code: str, tests: str, first_line: int, settings: Settings | None, limits: Limits
) -> Check:
    """Run `code` (mutating only from `first_line` on) against `tests` and, with `settings`, its mutants."""
    statements = test_statements(tests)
    target = Target("exercise", code, (tests,), (), first_line)
    chosen = mutants(code, first_line, settings.max_mutants, seed_of(target, settings)) if settings else []
    if settings is None or not chosen:
        # Verification alone: the program as it always was, the sandbox's own limit its timeout.
        verdict = sandbox.run([code, *statements], limits)
        if verdict.stages_passed < len(statements):
            return Check(_status(verdict), describe_failure(verdict, statements, limits.timeout_s, 0), None)
        return Check("passed", "", finish_score(sandbox, target, [], settings, limits, None) if settings else None)
    sources = [m.source for m in chosen]  # one that does not parse is counted apart in the sandbox
    # The guard stops the exercise's own run at its timeout; the mutants then run under their alarms.
    runner = runner_call(code, sources, 0, target.tests, settings, limits)
    stages = [guard_stage(limits.timeout_s), code, *statements, runner]
    verdict = sandbox.run(stages, program_limits(len(sources), settings, limits))
    if verdict.stages_passed < 1 + len(statements):
        return Check(_status(verdict), describe_failure(verdict, statements, limits.timeout_s, 1), None)
    return Check("passed", "", finish_score(sandbox, target, chosen, settings, limits, verdict))


def test_statements(tests: str) -> list[str]:
    """The top-level statements of `tests`, each with its own lines (decorators and all)."""
    try:
        body = pysource.parse(tests).body
    except (SyntaxError, ValueError):
        return [tests]
    lines = tests.splitlines(keepends=True)
    out = []
    for node in body:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        out.append("".join(lines[start - 1 : node.end_lineno]))
    return out or [tests]


def _status(verdict: Verdict) -> Status:
    return "timeout" if verdict.detail.startswith(GUARD_TIMEOUT) else verdict.status


def describe_failure(verdict: Verdict, statements: list[str], timeout_s: float, first: int) -> str:
    """The failing statement and its error, as a repair request shows them (`first`: the solution's stage)."""
    stage = verdict.failed_stage
    where = ""
    if stage is not None and first < stage <= first + len(statements):
        where = f"\n```python\n{statements[stage - first - 1].rstrip()}\n```"
    if _status(verdict) == "timeout":
        return f"it ran for more than {timeout_s:g} s (a loop that does not end, or far too slow){where}"
    if stage == first:
        return f"the solution raised {verdict.detail} as soon as it was defined"
    if verdict.status == "failed":
        message = verdict.detail.removeprefix("AssertionError:").strip()
        return f"this test failed{f' ({message})' if message else ''}:{where or ' ' + verdict.detail}"
    if verdict.status == "error":
        return f"this test raised {verdict.detail}:{where or ' (in the tests)'}"
    return f"the program was stopped: {verdict.detail or verdict.status}"
