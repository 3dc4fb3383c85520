"""Composed exercise families over the words of a text, for the offline teacher: a selection, a transformation
and a summary ("the upper-cased forms of the words of `text` that start with a vowel, joined by spaces"), each
written out in words, named for what it does, and solved in one of several styles.

Why: the integer compositions (`offline_composed`) teach one kind of task, a list of numbers filtered and
summed; a model finetuned on them alone writes `for x in ...: if x > ...` into string problems too (the demo's
finetuned model, issue 37). Strings are half of HumanEval. Compositions that are a benchmark problem under another
name are left out the same way (`offline_composed.scan`, `offline_composed_excluded.json`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from phi1.teacher.offline_exercises import Family


@dataclass(frozen=True)
class WordSelect:
    key: str
    test: str  # a condition on `{w}`, may use params
    phrase: str  # "start with a vowel", "are longer than {n} letters"
    names: tuple[str, ...]  # name parts, "vowel_initial", "longer_than_{n}"
    adjective: bool  # before the noun ("long_words") or after it ("words_longer_than_4")
    params: tuple[tuple[str, tuple[Any, ...]], ...] = ()


@dataclass(frozen=True)
class WordTransform:
    key: str
    expr: str  # of `{w}`
    phrase: str  # "the upper-cased forms of ", "" (the words themselves)
    names: tuple[str, ...]
    kind: str  # "str" or "int": what the expression gives


@dataclass(frozen=True)
class WordSummary:
    key: str
    phrase: str  # from {of} (the transformation's words), {p} (the text) and {select}
    names: tuple[str, ...]
    empty: str  # what an empty selection gives, in words
    returns: dict[str, str]  # the return annotation by the transformation's kind (a kind not here: not composed)
    bodies: tuple[str, ...]  # solutions: {sel} the condition, {val} the value, {p} the text, {w} the word
    identity_only: bool = False
    singular: bool = False


WORD_SELECTS = (
    WordSelect("vowel", "{w}[0].lower() in 'aeiou'", "start with a vowel", ("vowel_initial", "vowel_starting"), True),
    WordSelect("consonant", "{w}[0].lower() not in 'aeiou'", "start with a consonant", ("consonant_initial",), True),
    WordSelect("capital", "{w}[0].isupper()", "start with a capital letter", ("capitalized", "uppercase_initial"),
               True),
    WordSelect("long", "len({w}) > {n}", "are longer than {n} letters", ("longer_than_{n}", "over_{n}_letters"), False,
               (("n", (3, 4, 5, 6)),)),
    WordSelect("short", "len({w}) <= {n}", "have at most {n} letters", ("up_to_{n}_letters", "at_most_{n}_letters"),
               False, (("n", (3, 4, 5)),)),
    WordSelect("contains", "{c!r} in {w}.lower()", "contain the letter {c}", ("containing_{c}", "with_letter_{c}"),
               False, (("c", ("a", "e", "o", "r", "t")),)),
    WordSelect("ends", "{w}.lower().endswith({c!r})", "end with the letter {c}", ("ending_in_{c}", "ending_with_{c}"),
               False, (("c", ("e", "n", "r", "y")),)),
)  # fmt: skip

WORD_TRANSFORMS = (
    WordTransform("identity", "{w}", "", ("words",), "str"),
    WordTransform("upper", "{w}.upper()", "the upper-cased forms of ", ("upper_words", "uppercased_words"), "str"),
    WordTransform("reverse", "{w}[::-1]", "the reversals of ", ("reversed_words", "backward_words"), "str"),
    WordTransform("initial", "{w}[0]", "the first letters of ", ("initials", "first_letters"), "str"),
    WordTransform("length", "len({w})", "the lengths of ", ("word_lengths", "lengths"), "int"),
)

_WORDS_OF = "{of}the words of `{p}` (split on whitespace) that {select}"
_CHOSEN = "    chosen = [{val} for {w} in {p}.split() if {sel}]\n"

WORD_SUMMARIES = (
    WordSummary("count", "how many words of `{p}` (split on whitespace) {select}", ("count", "number_of"), "0",
                {"str": "int"},
                ("    return sum(1 for {w} in {p}.split() if {sel})\n",
                 "    count = 0\n    for {w} in {p}.split():\n        if {sel}:\n            count += 1\n"
                 "    return count\n"),
                identity_only=True),
    WordSummary("list", "a list of " + _WORDS_OF + ", in their order in the text", ("list", "collect", "get"),
                "an empty list", {"str": "list[str]", "int": "list[int]"},
                ("    return [{val} for {w} in {p}.split() if {sel}]\n",
                 "    result = []\n    for {w} in {p}.split():\n        if {sel}:\n            result.append({val})\n"
                 "    return result\n")),
    WordSummary("join", _WORDS_OF + ", joined by single spaces in their order in the text", ("join", "keep"),
                "an empty string", {"str": "str"},
                ("    return ' '.join({val} for {w} in {p}.split() if {sel})\n",
                 "    parts = []\n    for {w} in {p}.split():\n        if {sel}:\n            parts.append({val})\n"
                 "    return ' '.join(parts)\n")),
    WordSummary("first", "the first of " + _WORDS_OF, ("first",), "None", {"str": "str | None", "int": "int | None"},
                ("    return next(({val} for {w} in {p}.split() if {sel}), None)\n",
                 "    for {w} in {p}.split():\n        if {sel}:\n            return {val}\n    return None\n"),
                singular=True),
    WordSummary("last", "the last of " + _WORDS_OF, ("last", "final"), "None",
                {"str": "str | None", "int": "int | None"},
                (_CHOSEN + "    return chosen[-1] if chosen else None\n",
                 "    last = None\n    for {w} in {p}.split():\n        if {sel}:\n            last = {val}\n"
                 "    return last\n"),
                singular=True),
    WordSummary("sorted", _WORDS_OF + ", sorted", ("sorted", "ordered"), "an empty list",
                {"str": "list[str]", "int": "list[int]"},
                ("    return sorted({val} for {w} in {p}.split() if {sel})\n",
                 _CHOSEN + "    chosen.sort()\n    return chosen\n")),
    WordSummary("total", "the sum of " + _WORDS_OF, ("total", "sum"), "0", {"int": "int"},
                ("    return sum({val} for {w} in {p}.split() if {sel})\n",
                 "    total = 0\n    for {w} in {p}.split():\n        if {sel}:\n            total += {val}\n"
                 "    return total\n")),
)  # fmt: skip

_PARAMS = ("text", "sentence", "phrase", "line", "s")
_ITEM = {"text": "word", "sentence": "word", "phrase": "w", "line": "token", "s": "w"}
_DOCS = (
    "Return {phrase}. Return {empty} when no word qualifies.",
    "Given a string `{p}`, return {phrase}; return {empty} if there is none.",
    "Return {phrase}, or {empty} when there are none.",
)
# Test words: both cases, every length from 1 to 9, vowel and consonant starts, the letters the selections name.
_POOL = ("a", "an", "ox", "Eve", "sky", "tree", "Oak", "iron", "stone", "Apple", "river", "tiger", "ember",
         "Nolan", "orange", "yellow", "Berry", "harbor", "umbrella", "quartz", "meadow", "ivy", "lantern",
         "Oregon", "tower", "cedar", "Ada", "kettle", "nutmeg", "Tuesday")  # fmt: skip


def _name(summary: WordSummary, transform: WordTransform, select: WordSelect, rng: random.Random) -> str:
    agg, noun, part = rng.choice(summary.names), rng.choice(transform.names), rng.choice(select.names)
    if summary.key == "count":
        noun = "words"
    elif summary.singular:
        noun = noun.removesuffix("s")  # first_vowel_initial_word
    return f"{agg}_{part}_{noun}" if select.adjective else f"{agg}_{noun}_{part}"


def _sentence(rng: random.Random, n: tuple[int, int] = (1, 8)) -> str:
    return " ".join(rng.choice(_POOL) for _ in range(rng.randint(*n)))


def word_compositions() -> tuple[Family, ...]:
    """Every word composition whose parts fit (a summary that has a return type for the transformation's kind)."""
    families = []
    for summary in WORD_SUMMARIES:
        for transform in WORD_TRANSFORMS:
            if transform.kind not in summary.returns or (summary.identity_only and transform.key != "identity"):
                continue
            families += [_family(summary, transform, select) for select in WORD_SELECTS]
    return tuple(families)


def _family(summary: WordSummary, transform: WordTransform, select: WordSelect) -> Family:
    def params(rng: random.Random) -> dict[str, Any]:
        chosen: dict[str, Any] = {k: rng.choice(values) for k, values in select.params}
        p = rng.choice(_PARAMS)
        w = _ITEM[p]
        sel = select.test.format(w=w, **chosen)
        val = transform.expr.format(w=w)
        said = select.phrase.format(**chosen)
        of = transform.phrase if summary.key != "count" else ""
        phrase = summary.phrase.format(of=of, p=p, select=said)
        doc = rng.choice(_DOCS).format(phrase=phrase, empty=summary.empty, p=p)
        body = rng.choice(summary.bodies).format(sel=sel, val=val, p=p, w=w)
        return {**chosen, "p": p, "doc": doc, "body": body}

    def inputs(rng: random.Random, fields: dict[str, Any]) -> list[tuple[Any, ...]]:
        # Random sentences, extra spaces (split() takes any run of whitespace), one word, and no words at all.
        return [(_sentence(rng),) for _ in range(5)] + [("  " + _sentence(rng, (2, 4)) + " ",), (rng.choice(_POOL),),
                                                       ("",)]  # fmt: skip

    return Family(
        f"words-{summary.key}-{transform.key}-{select.key}",
        ("string", "text", "word", "loop", "filter", "condition", "comprehension", "character", "function"),
        f"def {{name}}({{p}}: str) -> {summary.returns[transform.kind]}:",
        "{doc}",
        "{body}",
        inputs,
        params,
        name=lambda rng: _name(summary, transform, select, rng),
    )
