"""Composed exercise families for the offline teacher: a selection, a transformation and a summary over a list of
integers ("the sum of the squares of the numbers divisible by 3"), each written out in words, named for what
it does, and solved in one of several styles (a loop, a comprehension, a built-in).

Why: the hand-written catalogue (`offline_exercises`) has a few dozen families; a run of hundreds of exercises
repeats them, and clean drops the repeats as near duplicates. Composition gives hundreds of distinct tasks whose
names, docstrings and code differ with the task, the way HumanEval and MBPP name and state theirs, so a model
learns that a name means something.

Compositions that are a HumanEval or MBPP problem under another name are left out: `scan` runs phi1's own
detectors over several exercises of every composition and writes those matched, with the problems, to
`offline_composed_excluded.json` (MBPP's list problems are many and their three tests weak, so most
compositions of a few kinds are left out); tests/test_decontam.py checks the rest again.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from phi1.teacher.offline_exercises import Family, random_ints


@dataclass(frozen=True)
class Select:
    key: str
    test: str  # a condition on `{x}`, may use params
    phrase: str  # "are even", "are divisible by {k}"
    names: tuple[str, ...]  # name parts: "even", "divisible_by_{k_w}" ({k_w}: k as a name writes it, minus_3)
    adjective: bool  # the name part goes before the noun ("sum_even_squares") or after it ("sum_squares_above_3")
    params: tuple[tuple[str, tuple[int, ...]], ...] = ()


@dataclass(frozen=True)
class Transform:
    key: str
    expr: str  # of `{x}`
    phrase: str  # "the squares of ", "" (the numbers themselves)
    names: tuple[str, ...]  # "squares"; the identity: "numbers", "values"


@dataclass(frozen=True)
class Summary:
    key: str
    phrase: str  # what is returned, from {of} (the transformation's words), {p} (the list) and {select}
    names: tuple[str, ...]  # "sum", "total"
    empty: str  # what an empty selection gives, in words
    returns: str  # the return annotation
    bodies: tuple[str, ...]  # solutions: {sel} the condition, {val} the value, {p} the list, {x} the item
    singular: bool = False  # names read "largest_even_number"
    imports: str = ""
    identity_only: bool = False  # a count does not depend on a transformation


SELECTS = (
    Select("even", "{x} % 2 == 0", "are even", ("even",), True),
    Select("odd", "{x} % 2 != 0", "are odd", ("odd",), True),
    Select("positive", "{x} > 0", "are positive (greater than zero)", ("positive",), True),
    Select("negative", "{x} < 0", "are negative", ("negative",), True),
    Select("nonzero", "{x} != 0", "are not zero", ("nonzero",), True),
    Select("multiple", "{x} % {k} == 0", "are divisible by {k}", ("divisible_by_{k_w}", "multiples_of_{k_w}"), False,
           (("k", (3, 4, 5, 6, 7, 9)),)),
    Select("above", "{x} > {t}", "are greater than {t}", ("above_{t_w}", "greater_than_{t_w}"), False,
           (("t", (2, 3, 4, 5, 6, 8, 10, 12)),)),
    Select("below", "{x} < {t}", "are smaller than {t}", ("below_{t_w}", "less_than_{t_w}"), False,
           (("t", (-3, -1, 1, 2, 4, 6, 9)),)),
    Select("between", "{lo} <= {x} <= {hi}", "lie between {lo} and {hi}, both included",
           ("between_{lo_w}_and_{hi_w}", "in_range_{lo_w}_{hi_w}"), False, (("lo", (-5, -2, 0, 1, 3)), ("hi", (6, 8, 11, 15)))),
)  # fmt: skip

TRANSFORMS = (
    Transform("identity", "{x}", "", ("numbers", "values", "elements")),
    Transform("square", "{x} * {x}", "the squares of ", ("squares", "squared_values")),
    Transform("cube", "{x} ** 3", "the cubes of ", ("cubes", "cubed_values")),
    Transform("abs", "abs({x})", "the absolute values of ", ("absolute_values", "abs_values")),
    Transform("double", "2 * {x}", "the doubled values of ", ("doubled_values", "doubles")),
    Transform("negate", "-{x}", "the negated values of ", ("negated_values", "opposites")),
    Transform("last_digit", "abs({x}) % 10", "the last decimal digits of ", ("last_digits", "final_digits")),
)

_NUMBERS = "{of}the numbers in `{p}` that {select}"
_LOOP = "    {acc} = {start}\n    for {x} in {p}:\n        if {sel}:\n            {acc} {op} {val}\n    return {acc}\n"
_CHOSEN = "    chosen = [{val} for {x} in {p} if {sel}]\n"

SUMMARIES = (
    Summary("sum", "the sum of " + _NUMBERS, ("sum", "total"), "0", "int",
            ("    return sum({val} for {x} in {p} if {sel})\n",
             _LOOP.replace("{acc}", "total").replace("{start}", "0").replace("{op}", "+="))),
    Summary("count", "how many numbers in `{p}` {select}", ("count", "number_of", "how_many"), "0", "int",
            ("    return sum(1 for {x} in {p} if {sel})\n",
             "    count = 0\n    for {x} in {p}:\n        if {sel}:\n            count += 1\n    return count\n",
             "    return len([{x} for {x} in {p} if {sel}])\n"), identity_only=True),
    Summary("product", "the product of " + _NUMBERS, ("product", "multiply"), "1", "int",
            ("    return math.prod({val} for {x} in {p} if {sel})\n",
             _LOOP.replace("{acc}", "product").replace("{start}", "1").replace("{op}", "*=")),
            imports="import math\n\n"),
    Summary("max", "the largest of " + _NUMBERS, ("largest", "max", "biggest"), "None", "int | None",
            (_CHOSEN + "    return max(chosen) if chosen else None\n",
             "    best = None\n    for {x} in {p}:\n        if {sel}:\n            value = {val}\n"
             "            if best is None or value > best:\n                best = value\n    return best\n"),
            singular=True),
    Summary("min", "the smallest of " + _NUMBERS, ("smallest", "min", "lowest"), "None", "int | None",
            (_CHOSEN + "    return min(chosen) if chosen else None\n",
             "    best = None\n    for {x} in {p}:\n        if {sel}:\n            value = {val}\n"
             "            if best is None or value < best:\n                best = value\n    return best\n"),
            singular=True),
    Summary("list", "a list of " + _NUMBERS + ", in their original order", ("select", "keep", "collect"),
            "an empty list", "list[int]",
            ("    return [{val} for {x} in {p} if {sel}]\n",
             "    result = []\n    for {x} in {p}:\n        if {sel}:\n            result.append({val})\n    return result\n")),
    Summary("sorted", _NUMBERS + ", sorted from smallest to largest", ("sorted", "ordered"), "an empty list",
            "list[int]",
            ("    return sorted({val} for {x} in {p} if {sel})\n",
             "    result = []\n    for {x} in {p}:\n        if {sel}:\n            result.append({val})\n"
             "    result.sort()\n    return result\n")),
    Summary("first", "the first of " + _NUMBERS + ", in the order of the list", ("first",), "None", "int | None",
            ("    return next(({val} for {x} in {p} if {sel}), None)\n",
             "    for {x} in {p}:\n        if {sel}:\n            return {val}\n    return None\n"), singular=True),
    Summary("last", "the last of " + _NUMBERS + ", in the order of the list", ("last", "final"), "None",
            "int | None",
            (_CHOSEN + "    return chosen[-1] if chosen else None\n",
             "    last = None\n    for {x} in {p}:\n        if {sel}:\n            last = {val}\n    return last\n"),
            singular=True),
    Summary("mean", "the mean of " + _NUMBERS + ", rounded to 2 decimals", ("mean", "average"), "None",
            "float | None",
            (_CHOSEN + "    return round(sum(chosen) / len(chosen), 2) if chosen else None\n",
             "    total, count = 0, 0\n    for {x} in {p}:\n        if {sel}:\n            total += {val}\n"
             "            count += 1\n    return round(total / count, 2) if count else None\n")),
    Summary("distinct", "how many different values there are among " + _NUMBERS, ("count_distinct", "distinct_count"),
            "0", "int",
            ("    return len({{{val} for {x} in {p} if {sel}}})\n",
             "    seen = set()\n    for {x} in {p}:\n        if {sel}:\n            seen.add({val})\n    return len(seen)\n")),
)  # fmt: skip

# Compositions that a detector of `phi1 decontam` matches to a HumanEval or MBPP problem (execution: it passes
# the problem's tests renamed to its entry point; or AST tau >= 0.8), each with the problems: made by `scan`
# (python -m phi1.teacher.offline_composed), read here.
EXCLUDED_FILE = "offline_composed_excluded.json"


@lru_cache(maxsize=1)
def excluded() -> dict[str, list[list[Any]]]:
    return json.loads((resources.files("phi1.teacher") / EXCLUDED_FILE).read_text())


_PARAM_NAMES = ("numbers", "values", "nums", "items", "data", "readings")
_ITEM_NAMES = {"numbers": "n", "values": "v", "nums": "num", "items": "item", "data": "d", "readings": "r"}

_DOCS = (
    "Return {phrase}. Return {empty} when no number qualifies.",
    "Given a list of integers `{p}`, return {phrase}; return {empty} if there is none.",
    "Return {phrase}, or {empty} when there are none.",
)


def _name(summary: Summary, transform: Transform, select: Select, rng: random.Random) -> str:
    """A name that says what the function does, in the styles HumanEval and MBPP use (a template: it may hold
    the selection's parameters, `sum_squares_divisible_by_{k}`)."""
    agg, noun, part = rng.choice(summary.names), rng.choice(transform.names), rng.choice(select.names)
    if summary.key == "count":
        noun = rng.choice(("numbers", "values", "elements"))
    elif summary.singular:
        noun = noun.removesuffix("s")  # largest_even_square
    words = f"{agg}_{part}_{noun}" if select.adjective else f"{agg}_{noun}_{part}"
    nouns = ("sum", "total", "max", "min", "largest", "smallest", "product", "mean", "average", "first", "last")
    return "find_" + words if agg in nouns and rng.random() < 0.2 else words  # the style of many MBPP problems


def every_composition() -> tuple[Family, ...]:
    families = []
    for summary in SUMMARIES:
        for transform in TRANSFORMS:
            if summary.identity_only and transform.key != "identity":
                continue
            families += [_family(summary, transform, select) for select in SELECTS]
    return tuple(families)


def composed_families() -> tuple[Family, ...]:
    """Every composition that is not a benchmark problem under another name (`excluded`)."""
    return tuple(f for f in every_composition() if f.key not in excluded())


def scan(families: tuple[Family, ...], seeds: int, workers: int = 2, salt: str = "scan") -> dict[str, list[list[Any]]]:
    """The families that `phi1 decontam`'s detectors match to a benchmark problem in any of `seeds` exercises
    each (names, parameters, phrasing and solution style vary by seed): {key: [[task_id, [detectors]], ...]}."""
    from phi1.clean.detectors import Thresholds
    from phi1.clean.driver import detect_texts
    from phi1.clean.problems import load_benchmark_problems
    from phi1.sandbox import Sandbox
    from phi1.teacher.offline_exercises import build, name_template

    texts, keys = [], []
    for family in families:
        for seed in range(seeds):
            rng = random.Random(f"{salt}:{seed}")
            texts.append(build(family, name_template(family, rng), rng).code)
            keys.append(family.key)
    problems = tuple(load_benchmark_problems(True, True))
    with Sandbox(workers=workers) as sb:
        found, _ = detect_texts(texts, ["exercise"] * len(texts), problems, Thresholds(ast=0.8), sb)
    fired: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
    for (i, j), match in found.items():
        if match.detectors:
            fired.setdefault(keys[i], set()).add((problems[j].task_id, tuple(sorted(match.detectors))))
    return {k: [[t, list(d)] for t, d in sorted(v)] for k, v in sorted(fired.items())}


def main() -> None:
    """Scan every composition (`--seeds` exercises each) and write the exclusions beside this module."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    found = scan(every_composition(), args.seeds)
    path = Path(__file__).with_name(EXCLUDED_FILE)
    path.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(f"{len(found)} of {len(every_composition())} compositions match a benchmark problem: {path}")


def _family(summary: Summary, transform: Transform, select: Select) -> Family:
    def params(rng: random.Random) -> dict[str, Any]:
        chosen: dict[str, Any] = {k: rng.choice(values) for k, values in select.params}
        words = {f"{k}_w": str(v) if v >= 0 else f"minus_{-v}" for k, v in chosen.items()}
        p = rng.choice(_PARAM_NAMES)
        x = _ITEM_NAMES[p]
        sel = select.test.format(x=x, **chosen)
        val = transform.expr.format(x=x)
        said = select.phrase.format(**chosen)
        phrase = summary.phrase.format(of=transform.phrase if summary.key != "count" else "", p=p, select=said)
        doc = rng.choice(_DOCS).format(phrase=phrase, empty=summary.empty, p=p, select=said)
        body = rng.choice(summary.bodies).format(sel=sel, val=val, p=p, x=x)
        return {**chosen, **words, "p": p, "doc": doc, "body": body}

    def inputs(rng: random.Random, fields: dict[str, Any]) -> list[tuple[Any, ...]]:
        # Random lists, the empty list, and the edges of the selection (where a mutated comparison shows).
        edges = [0, -1, 1, 2, -2]
        for name in ("t", "lo", "hi", "k"):
            if name in fields:
                v = fields[name]
                edges += [v - 1, v, v + 1, -v] if name != "k" else [v, -v, v + 1, 2 * v]
        rng.shuffle(edges)
        return [(random_ints(rng, -12, 15, (1, 9)),) for _ in range(5)] + [(edges,), ([],)]

    return Family(
        f"{summary.key}-{transform.key}-{select.key}",
        ("list", "loop", "number", "filter", "condition", "comprehension", "arithmetic", "aggregate", "function"),
        f"def {{name}}({{p}}: list[int]) -> {summary.returns}:",
        "{doc}",
        "{body}",
        inputs,
        params,
        imports=summary.imports,
        name=lambda rng: _name(summary, transform, select, rng),
    )


if __name__ == "__main__":
    main()
