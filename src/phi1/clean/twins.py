"""Execution twins: a training function that, renamed to a benchmark problem's entry point, passes that
problem's own tests is a semantic copy of it, whatever its names, layout or algorithm (loop or recursion).

n-grams, embeddings and AST similarity miss exactly what an LLM teacher writes: a renamed, restructured
twin. Running every function against every problem would cost (functions x problems) sandbox runs, so cheap
signals pick a few candidates per problem first: the same number of positional parameters, and a name that
shares a word with the entry point (`fib` ~ `fibonacci`, `rolling_max` ~ `running_max`) or a high embedding
similarity. The sandbox confirms: about (problems x k) pairs, each candidate function run once over all of its
problems (`find_twins`).
"""

from __future__ import annotations

import ast
import base64
import json
import marshal
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phi1 import pysource
from phi1.clean.detectors.ast_match import parse_quiet
from phi1.markdown import code_blocks
from phi1.progress import progress_bar
from phi1.sandbox import Limits, Sandbox

_SPLIT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_MIN_PREFIX = 3


@dataclass(frozen=True)
class Function:
    sample: int  # index of the training sample it came from
    name: str
    arity: int  # positional parameters without defaults
    source: str  # the function, with the sample's top-level imports before it


@dataclass(frozen=True)
class Twin:
    sample: int
    problem: int
    function: str


def functions_of(text: str, kind: str, sample: int) -> list[Function]:
    """Top-level functions of a training sample (a textbook's: of its code blocks)."""
    sources = code_blocks(text) if kind == "textbook" else [text]
    out = []
    for source in sources:
        tree = parse_quiet(source)
        if tree is None:
            continue
        lines = source.splitlines()
        imports = [n for n in tree.body if _absolute_import(n)]
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno:
                body = "\n".join(lines[node.lineno - 1 - len(node.decorator_list) : node.end_lineno])
                prelude = _prelude(imports, node)
                out.append(Function(sample, node.name, arity(node), f"{prelude}{body}\n"))
    return out


def _absolute_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and not node.level)


def _prelude(imports: list[ast.stmt], function: ast.stmt) -> str:
    """The file's imports of names the function uses, each name in a try of its own: a file of The Stack
    imports what the sandbox may lack (a third-party package, another OS's module), and a function that needs
    none of it must still run. `__future__` imports stay first and bare, as they must."""
    used = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)}
    head, rest = [], []
    for node in imports:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            head.append(ast.unparse(node) + "\n")
            continue
        for alias in node.names:  # type: ignore[attr-defined]
            bound = alias.asname or (alias.name.split(".")[0] if isinstance(node, ast.Import) else alias.name)
            if bound == "*" or bound in used:
                one = ast.Import([alias]) if isinstance(node, ast.Import) else ast.ImportFrom(node.module, [alias], 0)
                rest.append(f"try:\n    {ast.unparse(one)}\nexcept Exception:\n    pass\n")
    return "".join(head + rest)


def arity(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    return len(args.posonlyargs) + len(args.args) - len(args.defaults)


def entry_arity(solution: str, entry: str) -> int | None:
    """The arity of `entry` in a benchmark's reference solution."""
    try:
        tree = pysource.parse(solution)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry:
            return arity(node)
    return None


def name_words(name: str) -> list[str]:
    return [w.lower() for part in name.split("_") for w in _SPLIT.findall(part)]


def name_similarity(entry: str, name: str) -> float:
    """The share of the entry point's words (of 3+ letters) that begin, or are begun by, a word of `name`."""
    want = [w for w in name_words(entry) if len(w) >= _MIN_PREFIX]
    have = name_words(name)
    if not want:
        return float(entry.lower() == name.lower())
    hits = sum(any(h.startswith(w) or (len(h) >= _MIN_PREFIX and w.startswith(h)) for h in have) for w in want)
    return hits / len(want)


class NameIndex:
    """`name_similarity` of one function name to every entry point at once: the words of the entry points,
    and every prefix of 3+ letters of them, in dictionaries, so that a name costs a few lookups per word
    instead of one comparison per problem (a corpus has millions of functions)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.exact: dict[str, list[int]] = {}  # entry points without a word of 3+ letters: equal names only
        self.words: dict[str, dict[int, int]] = {}  # entry word -> {problem: times the word is in its entry}
        self.prefixes: dict[str, set[str]] = {}  # prefix of 3+ letters -> entry words that begin with it
        self.size: list[int] = []
        for j, entry in enumerate(entries):
            want = [w for w in name_words(entry) if len(w) >= _MIN_PREFIX]
            self.size.append(len(want))
            if not want:
                self.exact.setdefault(entry.lower(), []).append(j)
            for w in want:
                counts = self.words.setdefault(w, {})
                counts[j] = counts.get(j, 0) + 1
                for end in range(_MIN_PREFIX, len(w) + 1):
                    self.prefixes.setdefault(w[:end], set()).add(w)

    def scores(self, name: str, floor: float = 0.0) -> dict[int, float]:
        """{problem: name_similarity(entry, name)} for the scores above 0 and at least `floor`."""
        matched: set[str] = set()
        for h in name_words(name):
            matched.update(h[:end] for end in range(_MIN_PREFIX, len(h) + 1) if h[:end] in self.words)
            if len(h) >= _MIN_PREFIX:
                matched |= self.prefixes.get(h, set())
        hits: dict[int, int] = {}
        for w in matched:
            for j, n in self.words[w].items():
                hits[j] = hits.get(j, 0) + n
        out = {j: n / self.size[j] for j, n in hits.items()}
        out.update(dict.fromkeys(self.exact.get(name.lower(), ()), 1.0))
        return {j: s for j, s in out.items() if s > 0 and s >= floor}


def candidates(
    functions: Sequence[Function],
    problems: Sequence[tuple[str, int | None]],
    cosine: np.ndarray | None,
    k_name: int = 3,
    k_cosine: int = 1,
    min_name: float = 0.5,
    min_cosine: float = 0.75,
) -> list[tuple[int, int]]:
    """(function index, problem index) pairs worth running. Per problem, among the functions of its arity:
    the `k_name` whose names share most words with the entry point (at least `min_name`), and the `k_cosine`
    whose samples are nearest to the problem (`cosine`: samples x problems, at least `min_cosine`)."""
    index = NameIndex([entry for entry, _ in problems])
    named: dict[int, list[tuple[float, int]]] = {}
    by_arity: dict[int, list[int]] = {}
    for i, f in enumerate(functions):
        by_arity.setdefault(f.arity, []).append(i)
        for j, score in index.scores(f.name, min_name).items():
            if problems[j][1] == f.arity:
                named.setdefault(j, []).append((score, i))
    out: list[tuple[int, int]] = []
    for j, (_, n_args) in enumerate(problems):
        pool = by_arity.get(n_args, []) if n_args is not None else []
        chosen = [i for _, i in sorted(named.get(j, []), reverse=True)[:k_name]]
        if cosine is not None and pool:
            near = sorted(((float(cosine[functions[i].sample, j]), i) for i in pool), reverse=True)
            chosen += [i for score, i in near[:k_cosine] if score >= min_cosine and i not in chosen]
        out.extend((i, j) for i in chosen)
    return out


# One program per teacher-written function: the function, then the sweep (a real module, run as a stage).
SWEEP = (Path(__file__).parent / "sweep_program.py").read_text(encoding="utf-8")


def sweep_twins(
    functions: Sequence[Function],
    problems: Sequence[tuple[str, str]],
    arities: Sequence[int | None],
    sandbox: Sandbox,
    per_test_s: float = 0.5,
    choices: Sequence[list[int]] | None = None,
) -> list[Twin]:
    """Every function against every problem of its arity, one sandbox program per function: renamed twins
    too, which no name or embedding signal would have proposed. For the teacher's own output (exercises and
    textbook code, a few functions each); corpus functions try only their `choices` (their nearest
    problems by embedding), and a corpus's problems their best candidates (`candidates`)."""
    by_arity: dict[int, list[int]] = {}
    for j, n in enumerate(arities):
        if n is not None:
            by_arity.setdefault(n, []).append(j)
    if choices is None:
        jobs = [(i, by_arity[f.arity]) for i, f in enumerate(functions) if by_arity.get(f.arity)]
    else:
        jobs = [(i, js) for i, js in enumerate(choices) if js]
    # The same function over the same problems runs once, whichever samples hold it: a textbook section shows
    # its function more than once, and sections repeat functions (on the demo, 600 are 200 distinct ones).
    groups: dict[tuple[str, str, tuple[int, ...]], list[int]] = {}
    for i, js in jobs:
        groups.setdefault((functions[i].name, functions[i].source, tuple(js)), []).append(i)
    holders = list(groups.values())
    runs = [(members[0], list(key[2])) for key, members in groups.items()]
    swept = _swept(functions, problems, runs, sandbox, per_test_s, lambda js: 120.0, "execution sweep")
    twins = {Twin(functions[i].sample, j, functions[i].name) for n, passed in swept for i in holders[n]
             for j in passed or ()}  # fmt: skip
    return sorted(twins, key=lambda t: (t.sample, t.problem))


def _swept(
    functions: Sequence[Function],
    problems: Sequence[tuple[str, str]],
    jobs: Sequence[tuple[int, Sequence[int]]],
    sandbox: Sandbox,
    per_test_s: float,
    timeout_s: Callable[[Sequence[int]], float],
    what: str,
) -> Iterator[tuple[int, list[int] | None]]:
    """(job, the problems whose tests passed) for each job (function index, problems): one sandbox program
    per job, the function then the sweep; None for a program that printed no verdict (it died or ran out of
    time)."""
    programs = []
    # Per set of problems, the sweep program with their compiled tests: one string that all its programs share
    # (their tests are ~0.5 MB; a copy in each of thousands of programs would be gigabytes).
    sweeps: dict[tuple[int, ...], str] = {}
    codes: dict[int, Any] = {}
    for i, js in jobs:
        key = tuple(js)
        if key not in sweeps:
            sweeps[key] = SWEEP + f"_phi1_loaded = _phi1_cases({compiled_cases(problems, js, codes)!r})\n"
        call = f"_phi1_sweep(_phi1_loaded, {functions[i].name!r}, {per_test_s!r})\n"
        programs.append([functions[i].source, sweeps[key], call])
    limits = [Limits(timeout_s=timeout_s(js), memory_mb=1024) for _, js in jobs]
    with progress_bar(len(programs), f"decontaminating: {what}", unit="functions") as advance:
        for n, verdict in sandbox.map(programs, lambda n: limits[n]):
            line = next((ln for ln in reversed(verdict.stdout.splitlines()) if ln.startswith("PHI1-TWINS ")), None)
            yield n, None if line is None else [int(j) for j in json.loads(line[11:])]
            advance(1)


def compiled_cases(problems: Sequence[tuple[str, str]], js: Sequence[int], codes: dict[int, Any]) -> bytes:
    """Problems `js` as the sweep program takes them: (problem, entry point, tests compiled), marshalled and in
    base64. Compiled here once per sweep (`codes` keeps them) rather than in each of its programs: with ~700
    problems of a function's arity, compiling their tests was most of each program's time (measured by
    benchmarks/sweep_throughput.py). A test that does not compile could never pass, and is left out."""
    cases = []
    for j in js:
        if j not in codes:
            try:
                codes[j] = compile(problems[j][1], f"<tests of problem {j}>", "exec", dont_inherit=True)
            except (SyntaxError, ValueError):
                codes[j] = None
        if codes[j] is not None:
            cases.append((j, problems[j][0], codes[j]))
    return base64.b64encode(marshal.dumps(cases))


def find_twins(
    functions: Sequence[Function],
    problems: Sequence[tuple[str, str]],
    pairs: Sequence[tuple[int, int]],
    sandbox: Sandbox,
    timeout_s: float = 5.0,
) -> list[Twin]:
    """Run each (function, problem) pair: the function, renamed to the problem's entry point, against the
    problem's tests (`problems`: (entry point, test program)). The twins are the pairs that pass.

    A function comes in several pairs (on the demo, 1,683 pairs of 383 distinct functions), and a sandbox's start
    costs more than a test: each function runs once, swept over all of its problems with `timeout_s` per
    test, as `sweep_twins` does (one function per program: it can sway no other function's verdict). The
    pairs of a program that prints no verdict (a crash, `os._exit`, a hang the alarm cannot stop) run again
    one by one, each with `timeout_s` in all, so a twin is never lost to its neighbour."""

    def same(i: int) -> tuple[str, str]:  # the function, whichever samples hold it
        return functions[i].name, functions[i].source

    groups: dict[tuple[str, str], tuple[int, dict[int, None]]] = {}  # -> (one of its indices, its problems)
    for i, j in pairs:
        groups.setdefault(same(i), (i, {}))[1][j] = None
    jobs = [(i, list(js)) for i, js in groups.values()]
    passed: set[tuple[tuple[str, str], int]] = set()
    alone: list[tuple[int, int]] = []
    for n, js in _swept(functions, problems, jobs, sandbox, timeout_s,
                        lambda js: timeout_s * (len(js) + 1), "execution"):  # fmt: skip
        if js is None:
            alone += [(jobs[n][0], j) for j in jobs[n][1]]
        else:
            passed |= {(same(jobs[n][0]), j) for j in js}
    programs = []
    for i, j in alone:
        entry, test = problems[j]
        f = functions[i]
        programs.append([f.source, f"{entry} = {f.name}\n", test])
    with progress_bar(len(programs), "decontaminating: execution, one by one", unit="runs") as advance:
        for n, verdict in sandbox.map(programs, Limits(timeout_s=timeout_s, memory_mb=1024)):
            if verdict.passed:
                passed.add((same(alone[n][0]), alone[n][1]))
            advance(1)
    twins = {Twin(functions[i].sample, j, functions[i].name) for i, j in pairs if (same(i), j) in passed}
    return sorted(twins, key=lambda t: (t.sample, t.problem))
