"""`func_name`: the entry point renamed (ReCode's FuncRename* family), consistently in the prompt (signature,
calls in helper code, the examples in the docstring), the canonical solution (recursion) and the tests.

A new name is never a keyword, a builtin, or a name the problem already uses. Left out from ReCode:
inflectional variation (needs a morphology lexicon offline).
"""

from __future__ import annotations

import random
import string

from phi1.evaluate.perturb.case import KEYBOARD, Case, Transform, fresh_name, names_in, rename
from phi1.evaluate.perturb.docstring import synonyms


def _renamed(case: Case, new: str | None) -> Case | None:
    taken = names_in(case.prompt, case.reference, *case.tests)
    if new is None or new == case.entry or fresh_name(new, taken) is None:
        return None
    old = case.entry
    return Case(
        rename(case.prompt, old, new),
        rename(case.reference, old, new),
        tuple(rename(t, old, new) for t in case.tests),
        new,
    )


def camel_case(case: Case, rng: random.Random) -> Case | None:
    parts = [p for p in case.entry.split("_") if p]
    if len(parts) < 2:
        return None
    return _renamed(case, parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]))


def butter_finger(case: Case, rng: random.Random) -> Case | None:
    name = case.entry
    spots = [k for k, c in enumerate(name) if c.lower() in KEYBOARD]
    if not spots:
        return None
    k = rng.choice(spots)
    return _renamed(case, name[:k] + rng.choice(KEYBOARD[name[k].lower()]) + name[k + 1 :])


def swap_characters(case: Case, rng: random.Random) -> Case | None:
    name = case.entry
    spots = [k for k in range(len(name) - 1) if name[k] != name[k + 1] and name[k].isalpha() and name[k + 1].isalpha()]
    if not spots:
        return None
    k = rng.choice(spots)
    return _renamed(case, name[:k] + name[k + 1] + name[k] + name[k + 2 :])


def change_char_case(case: Case, rng: random.Random) -> Case | None:
    name = case.entry
    letters = [k for k, c in enumerate(name) if c.isalpha()]
    if not letters:
        return None
    flip = set(rng.sample(letters, max(1, round(0.35 * len(letters)))))
    return _renamed(case, "".join(c.swapcase() if k in flip else c for k, c in enumerate(name)))


def synonym_substitution(case: Case, rng: random.Random) -> Case | None:
    parts = case.entry.split("_")
    table = synonyms()
    options = [(k, s) for k, p in enumerate(parts) for s in table.get(p.lower(), ()) if s.replace(" ", "").isalpha()]
    if not options:
        return None
    k, synonym = rng.choice(options)
    parts[k] = synonym.replace(" ", "_")
    return _renamed(case, "_".join(parts))


def inserted_character(case: Case, rng: random.Random) -> Case | None:
    k = rng.randrange(1, len(case.entry) + 1)
    return _renamed(case, case.entry[:k] + rng.choice(string.ascii_lowercase) + case.entry[k:])


TRANSFORMS: dict[str, Transform] = {
    "camel_case": camel_case,
    "synonym_substitution": synonym_substitution,
    "butter_finger": butter_finger,
    "swap_characters": swap_characters,
    "change_char_case": change_char_case,
    "inserted_character": inserted_character,
}
