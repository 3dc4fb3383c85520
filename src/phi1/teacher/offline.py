"""The offline teacher: deterministic, built in, no network. **It is not an LLM.**

It exists so that the whole pipeline runs on a laptop or in CI with no endpoint, and so that tests are
reproducible. It answers each of phi1's prompt templates from the prompt text alone:

- annotation: a documented heuristic over the code (docstrings, comments, type hints, function sizes,
  penalties for tests, configuration and generated data tables) mapped to the 0-5 additive scale;
- textbook: a section assembled from real material that ships with Python (the language reference
  topics in `pydoc_data.topics`) around a worked example from a hand-written catalogue of exercises;
- exercise: a function from that catalogue, renamed and parameterised by the prompt, with tests produced
  by running its (hand-written, correct) solution; a quarter of them come with only one test, weak by
  design, so that the mutation-score gate and the repair round have work to do;
- repair: the same exercise as the task's first answer, with every test case.

Answers are a pure function of (prompt, sample index, seed) and of this code: the teacher's model name carries
a digest of its source files (`phi1-offline@<digest>`), so a cache filled by an older offline teacher answers
nothing for a newer one. Data made with it shows the pipeline working, not what a real teacher would teach.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import textwrap
import time
from functools import lru_cache
from importlib import resources

from phi1 import prompts, pysource
from phi1.teacher.base import Request, Response, Teacher
from phi1.teacher.offline_exercises import all_families, build, choose_family, name_template


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of the offline teacher's own files: what its answers are made by."""
    digest = hashlib.sha256()
    for entry in sorted(resources.files("phi1.teacher").iterdir(), key=lambda e: e.name):
        if entry.name.startswith("offline") and entry.name.endswith((".py", ".json")):
            digest.update(entry.name.encode() + b"\0" + entry.read_bytes())
    return digest.hexdigest()[:12]


class OfflineTeacher(Teacher):
    backend = "offline"

    def __init__(self, model: str, *args: object, **kwargs: object) -> None:
        # Its answers are cached by (backend, model, request): the digest keeps an older version's out.
        super().__init__(f"{model}@{code_digest()}", *args, **kwargs)  # type: ignore[arg-type]

    async def _complete(self, request: Request) -> Response:
        start = time.perf_counter()
        text = request.text
        if request.messages:
            text = request.messages[-1][1]  # the user turn holds the template
        kind = prompts.identify(text)
        rng = random.Random(_seed(text, request))
        if kind == "annotate":
            answer = annotate(prompts.extract("annotate", text)["code"])
        elif kind == "textbook":
            answer = textbook_section(prompts.extract("textbook", text), rng)
        elif kind == "exercise":
            answer = exercise(prompts.extract("exercise", text), rng)
        elif kind == "repair" and prompts.identify(task := prompts.extract("repair", text)["task"]) == "exercise":
            # The same exercise as the first answer (its task's seed), now with every test case.
            answer = exercise(prompts.extract("exercise", task), random.Random(_seed(task, request)), weak_share=0)
        else:
            answer = _generic(text)
        prompt_tokens = _count_tokens(request.text)
        completion_tokens = _count_tokens(answer)
        latency = time.perf_counter() - start
        return Response(request, answer, "stop", prompt_tokens, completion_tokens, latency, model=self.model)


def _seed(text: str, request: Request) -> int:
    return int(hashlib.sha256(f"{text}\0{request.sample}\0{request.params.seed}".encode()).hexdigest()[:16], 16)


def _count_tokens(text: str) -> int:
    # A rough BPE-like count (words and punctuation runs), for usage accounting only.
    return len(re.findall(r"\w+|[^\w\s]+", text))


def _generic(text: str) -> str:
    return (
        "This is phi1's offline teacher, which answers only phi1's own prompt templates "
        "(annotation, textbook, exercise); the request was none of them.\n"
        f"It received {len(text)} characters."
    )


# -- annotation ----------------------------------------------------------------------------------------


def edu_features(code: str) -> dict[str, float]:
    """Features of a Python file that tell how much a student could learn from it."""
    lines = code.splitlines()
    nonblank = [line for line in lines if line.strip()]
    n = max(1, len(nonblank))
    comment_lines = sum(1 for line in nonblank if line.lstrip().startswith("#"))
    features: dict[str, float] = {
        "lines": len(nonblank),
        "comment_ratio": comment_lines / n,
        "parses": 0.0,
        "functions": 0,
        "doc_ratio": 0.0,
        "hint_ratio": 0.0,
        "mean_function_lines": 0.0,
        "literal_ratio": 0.0,
        "test_like": float(bool(re.search(r"^\s*(def test_|class Test|import unittest|import pytest)", code, re.M))),
        "generated": float(bool(re.search(r"(?i)(auto-?generated|do not edit|generated by)", code[:2000]))),
        "config_like": 0.0,
        "long_lines": sum(1 for line in nonblank if len(line) > 120) / n,
    }
    try:
        tree = pysource.parse(code)
    except (SyntaxError, ValueError):
        return features
    features["parses"] = 1.0
    funcs = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    features["functions"] = len(funcs)
    documented = sum(1 for node in [*funcs, *classes] if ast.get_docstring(node))
    features["doc_ratio"] = documented / max(1, len(funcs) + len(classes))
    if ast.get_docstring(tree):
        features["doc_ratio"] = min(1.0, features["doc_ratio"] + 0.2)
    hinted = sum(1 for f in funcs if f.returns is not None or any(a.annotation for a in f.args.args))
    features["hint_ratio"] = hinted / max(1, len(funcs))
    if funcs:
        sizes = [(f.end_lineno or f.lineno) - f.lineno + 1 for f in funcs]
        features["mean_function_lines"] = sum(sizes) / len(sizes)
    literal_nodes = sum(isinstance(node, ast.Constant) for node in ast.walk(tree))
    all_nodes = sum(1 for _ in ast.walk(tree))
    features["literal_ratio"] = literal_nodes / max(1, all_nodes)
    top_assigns = sum(isinstance(node, (ast.Assign, ast.AnnAssign)) for node in tree.body)
    features["config_like"] = float(not funcs and not classes and top_assigns >= max(3, len(tree.body) * 0.7))
    return features


def edu_score(code: str) -> tuple[int, list[str]]:
    """The heuristic 0-5 score and the reasons, following the additive rubric of the prompt."""
    f = edu_features(code)
    reasons: list[str] = []
    if not f["parses"] or f["lines"] == 0:
        return 0, ["the extract is not valid Python"]
    score = 1
    reasons.append("valid Python code")
    practical = f["functions"] > 0 and f["literal_ratio"] < 0.5 and not f["config_like"]
    if practical:
        score += 1
        reasons.append("it defines functions that do real work")
    structured = f["doc_ratio"] >= 0.3 or f["comment_ratio"] >= 0.08
    if practical and structured and 3 <= f["mean_function_lines"] <= 60:
        score += 1
        reasons.append("well-structured, with docstrings or comments")
    if score == 3 and f["doc_ratio"] >= 0.6 and f["hint_ratio"] >= 0.5 and f["lines"] <= 400:
        score += 1
        reasons.append("self-contained, documented and typed like a course example")
    if score == 4 and f["comment_ratio"] >= 0.12 and f["mean_function_lines"] <= 30:
        score += 1
        reasons.append("explains itself step by step")
    penalties = []
    if f["test_like"]:
        penalties.append("it is mostly test code")
    if f["generated"]:
        penalties.append("it is generated code")
    if f["config_like"] or f["literal_ratio"] >= 0.5:
        penalties.append("it is mostly data or configuration")
    if f["long_lines"] > 0.2:
        penalties.append("many very long lines")
    if penalties:
        score = max(1, score - len(penalties))
        reasons.extend(f"but {p}" for p in penalties)
    return score, reasons


def annotate(code: str) -> str:
    score, reasons = edu_score(code)
    justification = "; ".join(reasons)
    return f"The extract has {justification}.\n\nEducational score: {score}"


# -- textbook ------------------------------------------------------------------------------------------

# Language-reference topics (pydoc_data.topics keys) that explain a textbook subject.
_REFERENCE = {
    "loop": ["for", "while", "break", "continue"],
    "iteration": ["for", "while"],
    "condition": ["if", "comparisons", "booleans"],
    "boolean": ["booleans", "truth", "comparisons"],
    "function": ["function", "calls", "return", "lambda"],
    "recursion": ["function", "return"],
    "string": ["strings", "string-methods", "formatstrings"],
    "text": ["string-methods", "strings"],
    "list": ["lists", "typesseq", "typesseq-mutable", "slicings"],
    "sequence": ["typesseq", "slicings"],
    "dictionary": ["dict", "typesmapping"],
    "mapping": ["typesmapping"],
    "set": ["types"],
    "exception": ["exceptions", "try", "raise"],
    "error": ["exceptions", "try"],
    "class": ["class", "customization", "attribute-access"],
    "object": ["objects", "class"],
    "generator": ["yield"],
    "iterator": ["yield", "for"],
    "number": ["integers", "floating", "numeric-types"],
    "arithmetic": ["binary", "power", "numeric-types"],
    "scope": ["naming", "global", "nonlocal"],
    "module": ["import"],
    "context": ["with", "context-managers"],
    "comprehension": ["lists", "dict"],
    "slicing": ["slicings"],
    "assignment": ["assignment", "augassign"],
    "variable": ["assignment", "naming"],
}


def _reference_paragraphs(topic_text: str, rng: random.Random, limit: int = 2) -> list[str]:
    from pydoc_data.topics import topics

    lowered = topic_text.lower()
    keys = [key for word, keys in _REFERENCE.items() if word in lowered for key in keys]
    if not keys:
        keys = rng.sample(sorted({k for ks in _REFERENCE.values() for k in ks}), 2)
    paragraphs: list[str] = []
    for key in dict.fromkeys(keys):
        for block in re.split(r"\n\s*\n", topics.get(key, "")):
            prose = " ".join(line.strip() for line in block.splitlines())
            # Prose only: no grammar rules, tables, code or headings.
            if (
                120 <= len(prose) <= 700
                and prose.endswith(".")
                and "::=" not in prose
                and ">>>" not in prose
                and not block.startswith(" ")
                and prose.count("*") < 4
                and not re.match(r"^(\d+\.|\[\d+\]|Note|See also)", prose)
            ):
                paragraphs.append(prose)
        if len(paragraphs) >= limit * 2:
            break
    return rng.sample(paragraphs, min(limit, len(paragraphs))) if paragraphs else []


_OPENINGS = {
    "textbook": "This section introduces {subtopic} as part of {topic}.",
    "tutorial": "In this tutorial we will work through {subtopic}, one step at a time.",
    "worked example": "We start from a concrete problem and use it to learn about {subtopic}.",
}


def textbook_section(fields: dict[str, str], rng: random.Random) -> str:
    topic, subtopic = fields["topic"].strip(), fields["subtopic"].strip()
    audience, style = fields["audience"].strip(), fields["style"].strip()
    name = fields["function_name"].strip() or "solve"
    words = [w.strip() for w in fields["words"].split(",") if w.strip()]
    family = choose_family(f"{topic} {subtopic}", rng)
    ex = build(family, name, rng)
    opening = _OPENINGS.get(style.lower(), _OPENINGS["textbook"]).format(topic=topic, subtopic=subtopic)
    paragraphs = _reference_paragraphs(f"{topic} {subtopic}", rng)
    doc = ex.code.split('"""')[1].split("\n\n")[0].strip()
    parts = [
        f"## {subtopic[:1].upper() + subtopic[1:]}",
        "",
        f"{opening} It is written for {audience}.",
        "",
    ]
    if paragraphs:
        parts += ["The Python language reference describes the idea like this:", ""]
        parts += [textwrap.fill(p, 100) for p in paragraphs[:1]] + [""]
    parts += [
        f"Let us see it in code. The function `{name}` solves a small, precise task: {doc}",
        "",
        "```python",
        ex.code.rstrip(),
        "```",
        "",
        f"Calling it shows the result. For example, `{ex.example_call}` returns `{ex.example_output}`:",
        "",
        "```python",
        ex.code.rstrip(),
        "",
        f"print({ex.example_call})",
        "```",
        "",
        "Tests make the behaviour precise, including the edge cases:",
        "",
        "```python",
        ex.code.rstrip(),
        "",
        *ex.tests[:4],
        "```",
    ]
    if len(paragraphs) > 1:
        parts += ["", textwrap.fill(paragraphs[1], 100)]
    if words:
        listed = ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]
        parts += [
            "",
            f"To practise, write your own inputs about {listed} and predict what `{name}` returns before you run it.",
        ]
    return "\n".join(parts) + "\n"


# -- exercises -----------------------------------------------------------------------------------------


# Exercises whose tests are weak by design, as a real teacher's sometimes are: only the first WEAK_TESTS
# asserts. Asked to repair one (its surviving mutants shown), the teacher answers with every test case.
WEAK_SHARE = 0.25
WEAK_TESTS = 1


def exercise(fields: dict[str, str], rng: random.Random, weak_share: float = WEAK_SHARE) -> str:
    # Any family the topic touches, not only the closest: each of hundreds is then rare, and a run of hundreds
    # of exercises repeats few of them (clean drops repeats as near duplicates).
    topic = f"{fields['topic']} {fields['subtopic']} {fields['constraint']}"
    family = choose_family(topic, rng, all_families(), min_pool=60)
    ex = build(family, name_template(family, rng), rng)  # named for what it does, as the prompt asks
    tests = ex.tests[:WEAK_TESTS] if rng.random() < weak_share else ex.tests
    return f"```python\n{ex.code.rstrip()}\n```\n\n```python\n" + "\n".join(tests) + "\n```\n"
