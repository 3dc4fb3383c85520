"""The offline teacher answers every phi1 prompt template with output of the right shape: code that
parses, exercises whose solutions pass their own tests in the sandbox, scores on the rubric's scale."""

from __future__ import annotations

import ast
import re
import sysconfig
from pathlib import Path

from conftest import ROOT
from phi1 import prompts
from phi1.config import TeacherConfig
from phi1.markdown import code_blocks
from phi1.sandbox import Sandbox
from phi1.teacher import Request, make_teacher
from phi1.teacher.offline import edu_score

TOPICS = [
    ("Loops", "while loops", "use a while loop"),
    ("Strings", "string methods", "no imports"),
    ("Recursion", "recursive functions", "use recursion"),
    ("Dictionaries", "counting with dicts", "return a dict"),
    ("Classes", "methods and state", "define a small class"),
    ("Exceptions", "try and except", "handle errors"),
    ("Sorting", "merging", "do not call sort"),
    ("Generators", "yield", "use a generator"),
]


def _offline():
    return make_teacher(TeacherConfig())


def test_exercises_parse_and_pass_their_own_tests_in_the_sandbox(sandbox: Sandbox) -> None:
    teacher = _offline()
    requests = [
        Request.chat(
            prompts.render("exercise", topic=t, subtopic=s, audience="a beginner", constraint=c),
            sample=k,
        )
        for i, (t, s, c) in enumerate(TOPICS)
        for k in range(4)
    ]
    programs, names = [], []
    for response in teacher.generate(requests):
        blocks = code_blocks(response.text)
        assert len(blocks) == 2, response.text
        code, tests = blocks
        tree = ast.parse(code)
        ast.parse(tests)
        # The teacher names the function for what it does (the prompt asks so): snake_case.
        func = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
        name = func.name
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", name), name
        assert ast.get_docstring(func) and ">>>" in ast.get_docstring(func)
        asserts = [line for line in tests.splitlines() if line.startswith("assert ")]
        # Weak by design (one assert, for the mutation-score gate to catch), or the full set.
        assert (len(asserts) == 1 or 3 <= len(asserts) <= 8) and all(name in a for a in asserts)
        programs.append([code, tests])
        names.append(name)
    weak = sum(p[1].count("assert ") == 1 for p in programs)
    assert 0 < weak < len(programs) / 2
    verdicts = dict(sandbox.map(programs))
    failed = [names[i] for i, v in verdicts.items() if not v.passed]
    assert not failed, failed
    # Diversity: different topics give different functions.
    assert len({p[0].split("\n", 1)[1] for p in programs}) >= len(programs) * 0.6


def test_textbook_sections_are_markdown_with_code_that_parses() -> None:
    teacher = _offline()
    for i, (topic, sub, _) in enumerate(TOPICS):
        prompt = prompts.render(
            "textbook",
            topic=topic,
            subtopic=sub,
            audience="a chemistry student",
            style="tutorial",
            function_name=f"helper_{i}",
            words="river, lemon",
        )
        [response] = list(teacher.generate([Request.chat(prompt)]))
        text = response.text
        assert text.startswith("## "), text[:80]
        blocks = code_blocks(text)
        assert len(blocks) >= 2
        for block in blocks:
            ast.parse(block)
        assert f"def helper_{i}(" in text
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        assert len(prose.split()) >= 40  # real prose around the code, not just code
        assert "chemistry student" in prose and "river" in prose


def test_answers_are_deterministic_and_vary_with_the_sample_index() -> None:
    prompt = prompts.render("exercise", topic="Lists", subtopic="slicing", audience="a student", constraint="none")
    a = _offline().complete(Request.chat(prompt))
    b = _offline().complete(Request.chat(prompt))
    assert a.text == b.text
    texts = {_offline().complete(Request.chat(prompt, sample=k)).text for k in range(8)}
    assert len(texts) >= 4


def test_a_cache_filled_by_another_version_of_the_offline_teacher_answers_nothing(tmp_path: Path) -> None:
    """The offline teacher's answers are made by its code: a cache filled by an older one (the same backend and
    configured model) must not hand its answers to a newer one, or a run keeps an old teacher's exercises."""
    from phi1.teacher.base import Response
    from phi1.teacher.cache import Cache

    prompt = prompts.render("exercise", topic="Lists", subtopic="slicing", audience="a student", constraint="none")
    request = Request.chat(prompt)
    cache = Cache(tmp_path / "cache.sqlite")
    old = Response(request, "an older teacher's exercise", "stop", 1, 1, 0.0, model="phi1-offline")
    cache.put(request.key("offline", "phi1-offline"), "offline", "phi1-offline", old)
    teacher = make_teacher(TeacherConfig(), tmp_path / "cache.sqlite")
    fresh = teacher.complete(request)
    assert fresh.text != old.text and "```python" in fresh.text and teacher.usage.cache_hits == 0
    # The same code answers from its own cache.
    again = make_teacher(TeacherConfig(), tmp_path / "cache.sqlite")
    assert again.complete(request).text == fresh.text and again.usage.cache_hits == 1


def test_annotation_answer_has_the_required_final_line() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    teacher = _offline()
    for name in ("heapq.py", "colorsys.py", "keyword.py"):
        code = (stdlib / name).read_text()
        response = teacher.complete(Request.chat(prompts.render("annotate", code=code)))
        last = response.text.strip().splitlines()[-1]
        assert re.fullmatch(r"Educational score: [0-5]", last), last


TEXTBOOK_STYLE = '''
"""Counting words: a small example of dictionaries."""


def count_words(text: str) -> dict[str, int]:
    """Return how often each word occurs in `text`.

    >>> count_words("a b a")
    {'a': 2, 'b': 1}
    """
    counts: dict[str, int] = {}
    # Walk over the words one by one.
    for word in text.split():
        # get() returns 0 the first time we see a word.
        counts[word] = counts.get(word, 0) + 1
    return counts


def most_common(text: str) -> str:
    """Return the most frequent word of `text`."""
    counts = count_words(text)
    # max() with a key picks the word with the highest count.
    return max(counts, key=counts.get)
'''

GENERATED_TABLE = "# Auto-generated by tablegen. DO NOT EDIT.\n" + "\n".join(
    f"ENTRY_{i} = ({i}, {i * 7 % 13}, 0x{i * 2654435761 % 2**32:08x}, '{chr(65 + i % 26)}')" for i in range(120)
)


def test_heuristic_rates_textbook_code_above_a_generated_table() -> None:
    good, _ = edu_score(TEXTBOOK_STYLE)
    bad, reasons = edu_score(GENERATED_TABLE)
    assert good >= 4 and bad <= 1 and good > bad
    assert any("generated" in r for r in reasons)
    assert edu_score("def broken(:\n")[0] == 0


def test_a_repair_request_gets_the_same_exercise_with_every_test_case() -> None:
    from phi1.mutation.score import Score
    from phi1.synth.repair import repair_request
    from phi1.synth.verify import Check

    teacher = _offline()
    tasks = [
        Request.chat(prompts.render("exercise", topic="Lists", subtopic="filtering", audience="a beginner",
                                    constraint="use a loop"), sample=k)
        for k in range(24)
    ]  # fmt: skip
    first = {r.request.sample: code_blocks(r.text) for r in teacher.generate(tasks)}
    weak = [k for k, (_, tests) in first.items() if tests.count("assert ") == 1]
    assert weak
    survivor = Score("x", "passed", mutants=3, killed=1, survived=2, survivors=[{"kind": "comparison", "line": 9,
                     "diff": "-    if v < 0:\n+    if (v <= 0):"}])  # fmt: skip
    repairs = [repair_request(tasks[k], *first[k], Check("passed", "", survivor), 0.7) for k in weak]
    assert prompts.identify(repairs[0].messages[-1][1]) == "repair"
    for response in teacher.generate(repairs):
        code, tests = code_blocks(response.text)
        old_code, old_tests = first[response.request.sample]
        assert code == old_code and old_tests.strip() in tests and 3 <= tests.count("assert ") <= 8


def test_a_runs_offline_exercises_are_named_for_their_task_rarely_repeat_and_are_no_benchmark(tmp_path: Path) -> None:
    """300 exercises as `make run` asks for them, cleaned: clean drops under 10% as duplicates of each other (45%
    before the composed families), no detector matches one to a benchmark problem, and a function's name shares
    a word with its own docstring (the seeds' random names did not: `select_points` counted words)."""
    from phi1.clean import run_clean
    from phi1.config import load_config
    from phi1.rundir import read_table
    from phi1.synth.exercises import synth_exercises

    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["synth.textbook_samples=0", "synth.exercise_samples=300"])
    synth = synth_exercises(tmp_path, cfg, make_teacher(cfg.teacher, tmp_path / "cache.sqlite"))
    verified = synth["counts"]["verified"]
    assert verified >= 270 and synth["counts"]["rejected"].get("teacher_error", 0) == 0
    removed = run_clean(tmp_path, cfg)["counts"]["removed"]
    duplicates = removed.get("near_duplicate", 0) + removed.get("exact_duplicate", 0)
    assert duplicates < 0.10 * verified, removed
    assert not [r for r in removed if r.startswith("benchmark")], removed
    rows = read_table(tmp_path / "exercises").to_pylist()

    def words(text: str) -> set[str]:
        return {w[:5] for w in re.findall(r"[a-z]{3,}", text.lower()) if w not in ("find", "the", "and")}

    named = [r["entry_point"] for r in rows]
    docs = [ast.get_docstring(next(n for n in ast.parse(r["prompt"]).body if isinstance(n, ast.FunctionDef)))
            for r in rows]  # fmt: skip
    telling = sum(bool(words(n.replace("_", " ")) & words(d.split(">>>")[0])) for n, d in zip(named, docs, strict=True))
    assert telling >= 0.9 * len(rows) and len(set(named)) >= 0.7 * len(rows)
