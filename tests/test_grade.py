"""`phi1 eval --grade`: the teacher grades each completion (a loopback OpenAI-compatible grade server), on a
user's own problems with tests and without; answers without the score line are asked again, then invalid."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import ROOT, phi1_cmd
from fake_server import FakeOpenAI
from phi1.evaluate.grade import parse_score

PROBLEMS = [
    {"task_id": "own/add", "prompt": 'def add(a, b):\n    """Return a + b."""\n', "entry_point": "add",
     "tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]},
    {"task_id": "own/story", "prompt": 'def tell():\n    """Return a short story about a robot."""\n'},
    {"task_id": "own/mute", "prompt": 'def mute():\n    """Return nothing at all."""\n'},
]  # fmt: skip
SAMPLES = [
    {"task_id": "own/add", "completion": "    return a + b\n"},
    {"task_id": "own/add", "completion": "    return a - b  # wrong\n"},
    {"task_id": "own/story", "completion": "    return 'A robot dreamed.'  # chatty\n"},
    {"task_id": "own/mute", "completion": "    return None  # never scored\n"},
]


def grader(body: dict) -> str:
    prompt = body["messages"][-1]["content"]
    first_ask = not grader.asked.setdefault(prompt, False)  # type: ignore[attr-defined]
    grader.asked[prompt] = True  # type: ignore[attr-defined]
    if "never scored" in prompt:
        return "I cannot decide."
    if "chatty" in prompt and first_ask:
        return "A fine story.\nScore: nine"  # no valid score line: asked once more
    if "chatty" in prompt:
        return "A fine story, and no tests to run.\nScore: 7"
    return "Subtracts instead of adding.\nScore: 2" if "# wrong" in prompt else "Correct and clear.\n**Score: 9**"


def test_grades_beside_pass_at_1_on_own_problems_with_and_without_tests(tmp_path: Path, cli_env: dict) -> None:
    problems, samples = tmp_path / "problems.jsonl", tmp_path / "samples.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    samples.write_text("".join(json.dumps(s) + "\n" for s in SAMPLES))
    grader.asked = {}  # type: ignore[attr-defined]
    with FakeOpenAI(respond=grader) as server:
        server.faults.append("500")  # a fault the teacher's retries absorb
        teacher = ["--set", "teacher.backend=openai", "--set", f"teacher.base_url={server.url}",
                   "--set", "teacher.model=fake"]  # fmt: skip
        args = ["eval", "--benchmark", "problems", "--problems", str(problems), "--samples", str(samples),
                "--grade", "--out", str(tmp_path / "out"), "--k", "1", *teacher]  # fmt: skip
        done = subprocess.run(phi1_cmd(*args), env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        asked = len(server.requests)
        again = subprocess.run(phi1_cmd(*args), env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and len(server.requests) == asked  # every grade came from the cache
    assert asked == 1 + 4 + 2  # the fault, four first asks, one more for each answer without a score
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    g = summary["grade"]
    assert g["graded"] == 3 and g["invalid"] == 1 and g["without_tests"] == 2
    assert g["mean_grade"] == round((9 + 2 + 7) / 3, 3) and g["agreement_with_tests"] == 1.0
    assert g["mean_grade_passed"] == 9 and g["mean_grade_failed"] == 2
    # pass@1 counts the problems that have tests: one of the two completions of own/add passes.
    assert summary["pass_at_k"]["problems"]["pass@1"] == 0.5 and summary["samples"] == 2
    grades = [json.loads(line) for line in (tmp_path / "out" / "grades.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["score"], r["passed"]) for r in grades] == [
        ("own/add", 9, True), ("own/add", 2, False), ("own/story", 7, None), ("own/mute", None, None)]  # fmt: skip
    assert "grade: mean 6.00 / 10 over 3 completions (1 invalid)" in done.stdout


def test_grading_needs_an_llm_and_a_well_formed_problems_file(tmp_path: Path, cli_env: dict) -> None:
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps(PROBLEMS[0]) + "\n")
    offline = subprocess.run(phi1_cmd("eval", "--benchmark", "problems", "--problems", str(problems), "--canonical",
                                      "--grade", "--out", str(tmp_path / "o")),
                             env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert offline.returncode != 0 and "the offline teacher is not one" in offline.stderr
    problems.write_text(json.dumps(PROBLEMS[0]) + "\n" + json.dumps({"task_id": "x", "tests": 3}) + "\n")
    bad = subprocess.run(phi1_cmd("eval", "--benchmark", "problems", "--problems", str(problems), "--canonical",
                                  "--out", str(tmp_path / "b")), env=cli_env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert bad.returncode != 0 and f"{problems}:2: field 'prompt'" in bad.stderr


def test_the_score_line_is_the_last_line_and_within_the_scale() -> None:
    assert parse_score("Good.\nScore: 10") == 10 and parse_score("Score: 3\n\n") == 3
    assert parse_score("Score: 11") is None and parse_score("Score: 8\nmore text") is None
    assert parse_score("") is None and parse_score("**Score: 0**") == 0
