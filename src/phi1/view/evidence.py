"""Why a sample was flagged as a benchmark look-alike, shown beside the problem: the word n-grams they share
(marked in both texts), their AST similarity, and each detector's verdict from clean's flags.

The texts are model- and corpus-written: every piece is escaped before the marks are put around it.
"""

from __future__ import annotations

import ast
import html
import re
import sqlite3
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from phi1.clean.detectors.ast_match import ast_matches, function_nodes, solution_shapes
from phi1.clean.detectors.llm_judge import ASKS, judge_request, parse_verdict
from phi1.clean.detectors.ngram import ngrams
from phi1.clean.problems import BenchmarkProblem, load_benchmark_problems
from phi1.clean.twins import functions_of
from phi1.markdown import code_blocks

_WORD = re.compile(r"\w+")  # the n-gram detector's words


@lru_cache(maxsize=1)
def problems() -> dict[str, BenchmarkProblem]:
    """Every HumanEval and MBPP problem phi1 ships, by task id."""
    return {p.task_id: p for p in load_benchmark_problems(humaneval=True, mbpp=True)}


def marked(text: str, shared: set[tuple[str, ...]], n: int) -> Markup:
    """`text` escaped, with the words of every n-gram in `shared` inside <mark>."""
    spans = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(text)]
    words = [w for _, _, w in spans]
    hit = [False] * len(spans)
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) in shared:
            for j in range(i, i + n):
                hit[j] = True
    out, at, open_ = [], 0, False
    for (start, end, _), h in zip(spans, hit, strict=True):
        gap = html.escape(text[at:start])
        if open_ and not h:
            out.append("</mark>")
            open_ = False
        out.append(gap)
        if h and not open_:
            out.append("<mark>")
            open_ = True
        out.append(html.escape(text[start:end]))
        at = end
    if open_:
        out.append("</mark>")
    out.append(html.escape(text[at:]))
    return Markup("".join(out))


def best_function(sample: str, kind: str, problem: BenchmarkProblem, min_nodes: int) -> tuple[float, str, str] | None:
    """(tau, name, source) of the sample's function most like the problem's solution by AST shape, as the AST
    detector compares them (a method or a nested function counts on its own); None where it has none."""
    bench = solution_shapes(problem.solution, problem.entry_point, min_nodes)
    best = None
    for block in code_blocks(sample) if kind == "textbook" else [sample]:
        for node, shape in function_nodes(block, min_nodes):
            taus = [tau for _, _, tau in ast_matches([shape], bench, 0.0, workers=1)]
            if taus and (best is None or max(taus) > best[0]):
                source = " " * node.col_offset + (ast.get_source_segment(block, node) or "")  # a method's indent
                best = (max(taus), node.name, textwrap.dedent(source))
    return best


def pair(sample: str, kind: str, problem: BenchmarkProblem, n: int = 13, min_nodes: int = 10) -> dict[str, Any]:
    """The evidence for one (sample, problem) pair: marked texts, shared n-gram count, the function that is
    most like the problem's by AST shape and its tau."""
    theirs = problem.prompt + "\n" + problem.solution if problem.benchmark == "mbpp" else problem.solution
    shared = ngrams(sample, n) & (ngrams(problem.prompt, n) | ngrams(problem.solution, n))
    best = best_function(sample, kind, problem, min_nodes)
    return {
        "sample": marked(sample, shared, n),
        "problem": marked(theirs, shared, n),
        "shared": len(shared),
        "n": n,
        "ast_tau": round(best[0], 4) if best else None,
        "best_name": best[1] if best else None,
        "best_source": best[2] if best else None,
    }


def judge_answers(cache: Path, sample: str, kind: str, problem: BenchmarkProblem) -> list[dict[str, Any]]:
    """The teacher's answers when clean's LLM judge asked about this pair (`clean.llm_judge`), read from the
    run's teacher cache: the judge's requests are rebuilt (the whole sample, and each of its functions, as
    corpus code is judged; every ask) and looked up by their cache keys. The cache is opened immutable, so
    nothing is written beside it; a cache that a running stage still holds open shows only what has reached its
    file (SQLite folds its write-ahead log in on close). Empty where the judge did not run."""
    if not cache.is_file():
        return []
    shown = [("the whole sample", sample)] + [(f"function {f.name}", f.source) for f in functions_of(sample, kind, 0)]
    db = sqlite3.connect(f"file:{cache}?immutable=1", uri=True)
    try:
        teachers = db.execute("SELECT DISTINCT backend, model FROM responses").fetchall()
        wanted: dict[str, tuple[str, int, str]] = {}
        for label, text in shown:
            for attempt in range(ASKS):
                request = judge_request(text, problem, attempt, 0)
                for backend, model in teachers:
                    wanted[request.key(backend, model)] = (label, attempt + 1, f"{backend}: {model}")
        keys = list(wanted)
        rows = []
        for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            rows += db.execute(f"SELECT key, text FROM responses WHERE key IN ({marks})", part).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()
    out = [{"shown": wanted[k][0], "ask": wanted[k][1], "teacher": wanted[k][2], "answer": text,
            "verdict": parse_verdict(text)} for k, text in rows]  # fmt: skip
    return sorted(out, key=lambda a: (a["shown"] != "the whole sample", a["shown"], a["ask"]))
