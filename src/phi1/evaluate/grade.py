"""`phi1 eval --grade`: the teacher grades each completion on a published rubric (`phi1/prompts/grade.md`:
the problem, the completion and what its tests gave; a short reason and a final line `Score: N`, 0-10),
beside pass@1, as the phi-1 paper graded its model on new, unconventional problems with GPT-4. An answer
without the score line is asked once more, then recorded as invalid. Problems without tests are graded
only. Grades are cached like every teacher call.

The offline teacher is not an LLM: it cannot grade, and `--grade` with it stops with that sentence.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from phi1 import prompts
from phi1.errors import Phi1Error
from phi1.evaluate.benchmarks import Benchmark
from phi1.evaluate.execute import Result
from phi1.evaluate.generate import Sample
from phi1.teacher import Params, Request, Teacher

SCORE = re.compile(r"^\s*\**Score:\s*(\d{1,2})\s*\**\s*$", re.IGNORECASE)
ASKS = 2  # an answer without the score line is asked once more


@dataclass(frozen=True)
class Grade:
    task_id: str
    completion_id: int
    score: int | None  # 0-10; None: no valid score line in any answer
    reason: str  # the grader's answer, score line included
    passed: bool | None  # the tests' verdict (None: the problem has no tests)

    def row(self) -> dict:
        return asdict(self)


def check_grader(teacher: Teacher) -> None:
    if teacher.backend == "offline":
        raise Phi1Error("--grade needs an LLM teacher: the offline teacher is not one (set teacher.backend, "
                        "teacher.model and teacher.base_url with --config or --set)")  # fmt: skip


def grade_request(problem: str, completion: str, outcome: str, attempt: int, key: object = None) -> Request:
    text = prompts.render("grade", problem=problem.rstrip(), completion=completion.rstrip() or "(empty)",
                          outcome=outcome)  # fmt: skip
    # A second ask is another sample of the same prompt: its own cache entry, not the invalid answer again.
    return Request.chat(text, params=Params(temperature=0.0, max_tokens=400), sample=attempt, metadata={"key": key})


def parse_score(answer: str) -> int | None:
    """The N of the answer's last non-empty line `Score: N` (0-10), else None."""
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    match = SCORE.match(lines[-1]) if lines else None
    return int(match.group(1)) if match and int(match.group(1)) <= 10 else None


def outcome(result: Result | None) -> str:
    if result is None:
        return "this problem has no tests."
    if result.passed:
        return "every test passed."
    return f"the tests failed ({result.status}: {result.detail[:300]})."


def grade_samples(
    teacher: Teacher, bench: Benchmark, samples: Sequence[Sample], results: dict[tuple[str, int], Result]
) -> list[Grade]:
    """A grade for every sample, in the samples' order."""
    answers: dict[tuple[str, int], str] = {}
    scores: dict[tuple[str, int], int | None] = {}
    todo = list(samples)
    for attempt in range(ASKS):
        requests = []
        for s in todo:
            key = (s.task_id, s.completion_id)
            problem = bench.problems[s.task_id].prompt
            requests.append(grade_request(problem, s.completion, outcome(results.get(key)), attempt, key))
        # Identical requests (the same completion twice) are sent once; each copy keeps its own metadata.
        for response in teacher.generate(requests, progress="grading"):
            key = response.request.metadata["key"]
            answers[key] = response.text if response.ok else f"(teacher error: {response.error})"
            scores[key] = parse_score(response.text) if response.ok else None
        todo = [s for s in todo if scores[(s.task_id, s.completion_id)] is None]
    grades = []
    for s in samples:
        key = (s.task_id, s.completion_id)
        result = results.get(key)
        grades.append(Grade(s.task_id, s.completion_id, scores[key], answers[key], result.passed if result else None))
    return grades


def grade_summary(grades: Sequence[Grade]) -> dict:
    """Mean grade (0-10), invalid answers, and agreement with the tests where there are tests: the share of
    graded samples whose grade >= 5 says what the tests said, and the mean grade of passing and failing."""
    valid = [g for g in grades if g.score is not None]
    tested = [g for g in valid if g.passed is not None]
    passing = [g.score for g in tested if g.passed]
    failing = [g.score for g in tested if not g.passed]
    return {
        "graded": len(valid),
        "invalid": len(grades) - len(valid),
        "mean_grade": round(statistics.mean(g.score for g in valid), 3) if valid else None,  # type: ignore[misc]
        "mean_grade_passed": round(statistics.mean(passing), 3) if passing else None,
        "mean_grade_failed": round(statistics.mean(failing), 3) if failing else None,
        "agreement_with_tests": round(sum((g.score >= 5) == g.passed for g in tested) / len(tested), 3)  # type: ignore[operator]
        if tested
        else None,
        "without_tests": sum(g.passed is None for g in grades),
    }
