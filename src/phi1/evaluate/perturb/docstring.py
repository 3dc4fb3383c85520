"""`docstring`: noise in the problem statement's prose (ReCode's nlaugmenter family, offline).

Only prose words change: the lines of a docstring that hold examples (`>>>` and what follows it up to a
blank line), code-like lines (with `=`, `->` or a call), words with digits, underscores, brackets or quotes,
the parameters' and the function's names and Python's own words stay as written.
Left out from ReCode: back-translation and tense/inflection changes (each needs a model or a morphology
lexicon that cannot ship offline at a useful quality); synonym insertion (close to substitution).
"""

from __future__ import annotations

import ast
import math
import random
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

from phi1.evaluate.perturb.case import KEYBOARD, RESERVED, Case, Transform, docstring_node, parse, split_lines

_WORD = re.compile(r"^([A-Za-z]+)([.,;:!?]?)$")
_CODE_LINE = re.compile(r">>>|=|->|\w\(")
# A sentence that starts with one of these leans on the one before it: it is never moved ahead of it.
_BACK_REFERENCE = frozenset(
    ["it", "its", "this", "that", "these", "those", "they", "them", "then", "otherwise", "also", "however",
     "so", "thus", "hence", "else", "if", "for", "note", "the", "such", "each", "both"]
)  # fmt: skip


@cache
def synonyms() -> dict[str, tuple[str, ...]]:
    """The shipped table (`synonyms.txt`: `word: one, another`), read once."""
    table: dict[str, tuple[str, ...]] = {}
    for line in (Path(__file__).parent / "synonyms.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            word, _, rest = line.partition(":")
            table[word.strip()] = tuple(s.strip() for s in rest.split(",") if s.strip())
    return table


def _protected_names(case: Case) -> set[str]:
    tree = parse(case.prompt)
    names = {case.entry} | {w for w in RESERVED if w[:1].isupper() or len(w) > 1}
    if tree is not None:
        names |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) for a in _args(n)}
    return names


def _args(fn: ast.FunctionDef) -> list[ast.arg]:
    a = fn.args
    return [*a.posonlyargs, *a.args, *a.kwonlyargs, *([a.vararg] if a.vararg else []), *([a.kwarg] if a.kwarg else [])]


def prose_lines(case: Case) -> list[int]:
    """0-based indices of the prompt's lines that are docstring prose."""
    node = docstring_node(case.prompt, case.entry)
    if node is None:
        return []
    lines = split_lines(case.prompt)
    chosen, in_example = [], False
    for i in range(node.lineno - 1, node.end_lineno or node.lineno):
        text = lines[i].strip()
        if not text or text.strip("\"'") == "":
            in_example = False
            continue
        if ">>>" in text:
            in_example = True
        if in_example or _CODE_LINE.search(text):
            continue
        chosen.append(i)
    return chosen


def _words(case: Case, min_len: int) -> list[tuple[int, int, int]]:
    """(line index, start, end) of every prose word that may change."""
    lines = split_lines(case.prompt)
    protected = _protected_names(case)
    found = []
    for i in prose_lines(case):
        for m in re.finditer(r"\S+", lines[i]):
            w = _WORD.match(m.group())
            if w and len(w.group(1)) >= min_len and w.group(1) not in protected and w.group(1).lower() not in protected:
                found.append((i, m.start(), m.start() + len(w.group(1))))
    return found


def _change_words(
    case: Case,
    rng: random.Random,
    change: Callable[[str, random.Random], str | None],
    min_len: int = 3,
    share: float = 0.1,
    keep: Callable[[str], bool] | None = None,
) -> Case | None:
    """Apply `change(word, rng) -> word | None` to a share of the prose words (at least one)."""
    lines = split_lines(case.prompt)
    words = [w for w in _words(case, min_len) if keep is None or keep(lines[w[0]][w[1] : w[2]])]
    if not words:
        return None
    picked = rng.sample(words, min(len(words), max(1, math.ceil(share * len(words)))))
    changed = False
    for i, start, end in sorted(picked, reverse=True):
        new = change(lines[i][start:end], rng)
        if new is not None and new != lines[i][start:end]:
            lines[i] = lines[i][:start] + new + lines[i][end:]
            changed = True
    return case.with_(prompt="".join(lines)) if changed else None


def _butter_finger(word: str, rng: random.Random) -> str | None:
    spots = [k for k, c in enumerate(word) if c.lower() in KEYBOARD]
    k = rng.choice(spots)
    new = rng.choice(KEYBOARD[word[k].lower()])
    return word[:k] + (new.upper() if word[k].isupper() else new) + word[k + 1 :]


def _swap(word: str, rng: random.Random) -> str | None:
    spots = [k for k in range(1, len(word) - 2) if word[k] != word[k + 1]]
    if not spots:
        return None
    k = rng.choice(spots)
    return word[:k] + word[k + 1] + word[k] + word[k + 2 :]


def _case(word: str, rng: random.Random) -> str | None:
    return "".join(c.upper() if rng.random() < 0.35 else c for c in word) if word.islower() else word.lower()


def _synonym(word: str, rng: random.Random) -> str | None:
    options = synonyms().get(word.lower())
    if not options:
        return None
    new = rng.choice(options)
    return new[:1].upper() + new[1:] if word[:1].isupper() else new


def butter_fingers(case: Case, rng: random.Random) -> Case | None:
    return _change_words(case, rng, _butter_finger)


def swap_characters(case: Case, rng: random.Random) -> Case | None:
    return _change_words(case, rng, _swap, min_len=4)


def change_char_case(case: Case, rng: random.Random) -> Case | None:
    return _change_words(case, rng, _case, share=0.15)


def synonym_substitution(case: Case, rng: random.Random) -> Case | None:
    table = synonyms()
    return _change_words(case, rng, _synonym, min_len=2, share=0.5, keep=lambda w: w.lower() in table)


def whitespace(case: Case, rng: random.Random) -> Case | None:
    """Doubled spaces between some words and a few trailing spaces (ReCode's whitespace perturbation, without
    splitting words, which reads as a typo and is covered by butter_fingers)."""
    lines = split_lines(case.prompt)
    chosen = prose_lines(case)
    gaps = [(i, m.start()) for i in chosen for m in re.finditer(r"(?<=\S) (?=\S)", lines[i])]
    if not gaps:
        return None
    for i, col in sorted(rng.sample(gaps, max(1, math.ceil(0.15 * len(gaps)))), reverse=True):
        lines[i] = lines[i][:col] + " " * rng.randint(2, 3) + lines[i][col + 1 :]
    return case.with_(prompt="".join(lines))


def sentence_reorder(case: Case, rng: random.Random) -> Case | None:
    """Two adjacent sentences of a prose paragraph swapped, where the second does not refer back (It, This,
    Otherwise, ...); the paragraph is then one line at its first line's indentation."""
    lines = split_lines(case.prompt)
    options = []
    for para in _paragraphs(prose_lines(case)):
        text = " ".join(lines[i].strip() for i in para)
        if text.startswith(('"""', "'''", 'r"""')):
            continue
        sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
        for k in range(len(sentences) - 1):
            first_word = sentences[k + 1].split()[0].lower().strip(",")
            if first_word not in _BACK_REFERENCE and sentences[k + 1][-1:] in ".!?" and sentences[k][-1:] in ".!?":
                options.append((para, sentences, k))
    if not options:
        return None
    para, sentences, k = rng.choice(options)
    sentences[k], sentences[k + 1] = sentences[k + 1], sentences[k]
    first = lines[para[0]]
    end = "\n" if lines[para[-1]].endswith("\n") else ""
    lines[para[0]] = first[: len(first) - len(first.lstrip())] + " ".join(sentences) + end
    for i in para[1:]:
        lines[i] = ""
    return case.with_(prompt="".join(lines))


def _paragraphs(indices: list[int]) -> list[list[int]]:
    groups: list[list[int]] = []
    for i in indices:
        if groups and groups[-1][-1] == i - 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


TRANSFORMS: dict[str, Transform] = {
    "butter_fingers": butter_fingers,
    "synonym_substitution": synonym_substitution,
    "change_char_case": change_char_case,
    "swap_characters": swap_characters,
    "sentence_reorder": sentence_reorder,
    "whitespace": whitespace,
}
