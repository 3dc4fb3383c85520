"""The offline teacher's catalogue of exercise families: small, classic, textbook-style functions with a
parameter or two, each written out by hand with a correct solution. Test cases are produced by running
the (trusted, hand-written) solution on generated inputs, so every exercise passes its own tests."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Inputs = Callable[[random.Random, dict[str, Any]], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Family:
    key: str
    words: tuple[str, ...]  # topic words this family illustrates
    signature: str  # "def {name}(...) -> ...:"
    doc: str  # docstring body (no quotes), may use {name} and params
    body: str  # indented solution, may use params
    inputs: Inputs
    params: Callable[[random.Random], dict[str, Any]] = lambda rng: {}
    imports: str = ""


def _ints(rng: random.Random, lo: int = -20, hi: int = 20, n: tuple[int, int] = (0, 9)) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(*n))]


_WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "tiger",
    "maple",
    "orbit",
    "piano",
    "lemon",
    "delta",
    "ember",
    "harbor",
    "quartz",
    "violet",
    "canyon",
    "meadow",
    "pixel",
    "saga",
    "noon",
    "level",
    "radar",
]


def _words(rng: random.Random, n: tuple[int, int] = (0, 7)) -> list[str]:
    return [rng.choice(_WORDS) for _ in range(rng.randint(*n))]


def _text(rng: random.Random) -> str:
    return " ".join(_words(rng, (0, 8)))


FAMILIES: tuple[Family, ...] = (
    Family(
        "sum_multiples",
        ("loop", "list", "number", "arithmetic", "condition", "filter"),
        "def {name}(numbers: list[int]) -> int:",
        "Return the sum of the numbers in `numbers` that are divisible by {k}.",
        "    total = 0\n    for n in numbers:\n        if n % {k} == 0:\n            total += n\n    return total\n",
        lambda rng, p: [(_ints(rng),) for _ in range(6)] + [([],)],
        lambda rng: {"k": rng.choice([2, 3, 4, 5, 7])},
    ),
    Family(
        "count_vowels",
        ("string", "loop", "character", "count", "text"),
        "def {name}(text: str) -> int:",
        "Count the vowels ({vowels}) in `text`, ignoring case.",
        "    vowels = set({vowels!r})\n    return sum(1 for ch in text.lower() if ch in vowels)\n",
        lambda rng, p: [(_text(rng).upper() if rng.random() < 0.3 else _text(rng),) for _ in range(6)] + [("",)],
        lambda rng: {"vowels": rng.choice(["aeiou", "aeiouy"])},
    ),
    Family(
        "palindromic_words",
        ("string", "slicing", "boolean", "condition", "text"),
        "def {name}(text: str) -> list[str]:",
        "Return the words of `text` (split on whitespace) that read the same forwards and backwards, ignoring "
        "case, in the order they appear.",
        "    result = []\n    for word in text.split():\n        if word.lower() == word.lower()[::-1]:\n"
        "            result.append(word)\n    return result\n",
        lambda rng, p: [(_text(rng),) for _ in range(5)] + [("Anna saw a Racecar at noon",), ("",)],
    ),
    Family(
        "fibonacci",
        ("recursion", "loop", "sequence", "number", "function"),
        "def {name}(n: int) -> int:",
        "Return the n-th term of the Fibonacci-like sequence F(0) = {a}, F(1) = {b}, F(n) = F(n-1) + F(n-2).",
        "    a, b = {a}, {b}\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
        lambda rng, p: [(n,) for n in sorted(rng.sample(range(0, 30), 6))],
        # Not F(0), F(1) = 0, 1 (HumanEval/55), 2, 1 (Lucas, MBPP/389) or 1, 1 (MBPP/873): those are benchmark twins.
        lambda rng: rng.choice([{"a": 1, "b": 3}, {"a": 3, "b": 1}, {"a": 2, "b": 5}]),
    ),
    Family(
        "reduce_fraction",
        ("recursion", "loop", "number", "arithmetic", "algorithm", "math"),
        "def {name}(numerator: int, denominator: int) -> tuple[int, int]:",
        "Reduce the fraction numerator / denominator (denominator > 0) to lowest terms, finding the greatest "
        "common divisor with Euclid's algorithm; return (numerator, denominator).",
        "    a, b = abs(numerator), denominator\n    while b:\n        a, b = b, a % b\n"
        "    return numerator // a, denominator // a\n",
        lambda rng, p: [(rng.randint(-300, 300), rng.randint(1, 300)) for _ in range(6)] + [(0, 7)],
    ),
    Family(
        "dedupe",
        ("list", "set", "order", "loop", "data structure"),
        "def {name}(items: list[int]) -> list[int]:",
        "Return the items of `items` without duplicates, keeping the first occurrence of each, in order.",
        "    seen = set()\n    result = []\n    for item in items:\n        if item not in seen:\n"
        "            seen.add(item)\n            result.append(item)\n    return result\n",
        lambda rng, p: [(_ints(rng, 0, 6, (0, 10)),) for _ in range(6)],
    ),
    Family(
        "word_frequency",
        ("dictionary", "string", "count", "loop", "text"),
        "def {name}(text: str) -> dict[str, int]:",
        "Return a dictionary that maps each word of `text` (split on whitespace, lower-cased) to how often it occurs.",
        "    counts: dict[str, int] = {{}}\n    for word in text.lower().split():\n"
        "        counts[word] = counts.get(word, 0) + 1\n    return counts\n",
        lambda rng, p: [(_text(rng),) for _ in range(5)] + [("",)],
    ),
    Family(
        "binary_search",
        ("algorithm", "search", "list", "loop", "sorting"),
        "def {name}(items: list[int], target: int) -> {ret}:",
        "Return the index of `target` in the sorted list `items`, or {missing} if it is absent. Use binary search.",
        "    lo, hi = 0, len(items) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n"
        "        if items[mid] == target:\n            return mid\n        if items[mid] < target:\n"
        "            lo = mid + 1\n        else:\n            hi = mid - 1\n    return {missing}\n",
        lambda rng, p: [
            (s, rng.choice(s) if s and rng.random() < 0.6 else rng.randint(-5, 60))
            for s in (sorted(set(_ints(rng, 0, 50, (0, 12)))) for _ in range(7))
        ],
        lambda rng: rng.choice([{"missing": -1, "ret": "int"}, {"missing": None, "ret": "int | None"}]),
    ),
    Family(
        "merge_sorted",
        ("list", "sorting", "algorithm", "loop", "two pointers"),
        "def {name}(left: list[int], right: list[int]) -> list[int]:",
        "Merge two sorted lists into one sorted list without calling sort().",
        "    result = []\n    i = j = 0\n    while i < len(left) and j < len(right):\n"
        "        if left[i] <= right[j]:\n            result.append(left[i])\n            i += 1\n"
        "        else:\n            result.append(right[j])\n            j += 1\n"
        "    result.extend(left[i:])\n    result.extend(right[j:])\n    return result\n",
        lambda rng, p: [(sorted(_ints(rng)), sorted(_ints(rng))) for _ in range(6)],
    ),
    Family(
        "transpose",
        ("list", "matrix", "nested", "loop", "comprehension"),
        "def {name}(matrix: list[list[int]]) -> list[list[int]]:",
        "Return the transpose of a rectangular matrix given as a list of rows.",
        "    if not matrix:\n        return []\n    return [[row[c] for row in matrix] for c in range(len(matrix[0]))]\n",
        lambda rng, p: (
            [
                ([[rng.randint(0, 9) for _ in range(c)] for _ in range(r)],)
                for r, c in [(1, 1), (2, 3), (3, 2), (3, 3), (1, 4)]
            ]
            + [([],)]
        ),
    ),
    Family(
        "running_range",
        ("list", "loop", "accumulate", "sequence"),
        "def {name}(numbers: list[int]) -> list[int]:",
        "Return a list whose i-th element is the largest minus the smallest of numbers[0], ..., numbers[i].",
        "    result = []\n    low = high = None\n    for n in numbers:\n"
        "        low = n if low is None or n < low else low\n        high = n if high is None or n > high else high\n"
        "        result.append(high - low)\n    return result\n",
        lambda rng, p: [(_ints(rng),) for _ in range(6)],
    ),
    Family(
        "rotate",
        ("list", "slicing", "sequence", "modulo"),
        "def {name}(items: list[int], k: int) -> list[int]:",
        "Rotate `items` to the {direction} by k positions and return the new list (k may exceed the length).",
        "    if not items:\n        return []\n    k %= len(items)\n    return {expr}\n",
        lambda rng, p: [(_ints(rng, 0, 9, (0, 7)), rng.randint(0, 10)) for _ in range(6)],
        lambda rng: rng.choice(
            [
                {"direction": "right", "expr": "items[-k:] + items[:-k] if k else items[:]"},
                {"direction": "left", "expr": "items[k:] + items[:k]"},
            ]
        ),
    ),
    Family(
        "caesar",
        ("string", "character", "encryption", "modulo", "loop"),
        "def {name}(text: str, shift: int) -> str:",
        "Shift every lower-case letter of `text` by `shift` places in the alphabet, wrapping around; keep other characters.",
        "    out = []\n    for ch in text:\n        if 'a' <= ch <= 'z':\n"
        "            out.append(chr((ord(ch) - ord('a') + shift) % 26 + ord('a')))\n"
        "        else:\n            out.append(ch)\n    return ''.join(out)\n",
        lambda rng, p: [(_text(rng), rng.randint(-30, 30)) for _ in range(6)],
    ),
    Family(
        "nesting_depth",
        ("stack", "string", "data structure", "loop", "condition"),
        "def {name}(text: str) -> int:",
        "Return how deeply the brackets {pairs} in `text` nest, or -1 if they are not balanced and properly nested.",
        "    pairs = {mapping!r}\n    stack = []\n    deepest = 0\n    for ch in text:\n"
        "        if ch in pairs.values():\n            stack.append(ch)\n            deepest = max(deepest, len(stack))\n"
        "        elif ch in pairs:\n            if not stack or stack.pop() != pairs[ch]:\n"
        "                return -1\n    return -1 if stack else deepest\n",
        lambda rng, p: [(s,) for s in ["()", "([]{})", "(]", "((", "", "a(b)c", "{[()()]}", ")("]],
        lambda rng: rng.choice(
            [
                {"pairs": "(), [] and {}", "mapping": {")": "(", "]": "[", "}": "{"}},
                {"pairs": "() and []", "mapping": {")": "(", "]": "["}},
            ]
        ),
    ),
    Family(
        "to_roman",
        ("string", "number", "conversion", "loop", "greedy"),
        "def {name}(number: int) -> str:",
        "Convert an integer from 1 to 3999 to a Roman numeral.",
        "    values = [(1000, 'M'), (900, 'CM'), (500, 'D'), (400, 'CD'), (100, 'C'), (90, 'XC'),\n"
        "              (50, 'L'), (40, 'XL'), (10, 'X'), (9, 'IX'), (5, 'V'), (4, 'IV'), (1, 'I')]\n"
        "    result = ''\n    for value, symbol in values:\n        while number >= value:\n"
        "            result += symbol\n            number -= value\n    return result\n",
        lambda rng, p: [(n,) for n in [1, 4, 9, 14, 40, 90, 400, rng.randint(1, 3999), 3999]],
    ),
    Family(
        "run_length",
        ("string", "compression", "loop", "count"),
        "def {name}(text: str) -> str:",
        "Run-length encode `text`: each run of a repeated character becomes the character followed by the run length.",
        "    if not text:\n        return ''\n    out = []\n    current, count = text[0], 1\n    for ch in text[1:]:\n"
        "        if ch == current:\n            count += 1\n        else:\n            out.append(f'{{current}}{{count}}')\n"
        "            current, count = ch, 1\n    out.append(f'{{current}}{{count}}')\n    return ''.join(out)\n",
        lambda rng, p: [
            ("".join(rng.choice("aab") * rng.randint(1, 3) for _ in range(rng.randint(0, 5))),) for _ in range(6)
        ],
    ),
    Family(
        "primes_between",
        ("number", "loop", "math", "boolean", "condition"),
        "def {name}(low: int, high: int) -> list[int]:",
        "Return the prime numbers p with low <= p < high, in increasing order, testing divisors up to the "
        "square root.",
        "    result = []\n    for n in range(max(low, 2), high):\n        i = 2\n        while i * i <= n:\n"
        "            if n % i == 0:\n                break\n            i += 1\n        else:\n"
        "            result.append(n)\n    return result\n",
        lambda rng, p: [(lo, lo + rng.randint(0, 40)) for lo in (rng.randint(-5, 100) for _ in range(6))],
    ),
    Family(
        "digit_sum",
        ("number", "loop", "arithmetic", "string", "recursion"),
        "def {name}(n: int) -> int:",
        "Return the sum of the decimal digits of n (the sign is ignored).",
        "    n = abs(n)\n    total = 0\n    while n:\n        total += n % 10\n        n //= 10\n    return total\n",
        lambda rng, p: [(rng.randint(-(10**6), 10**6),) for _ in range(6)] + [(0,)],
    ),
    Family(
        "anagrams",
        ("string", "sorting", "dictionary", "count", "boolean"),
        "def {name}(first: str, second: str) -> bool:",
        "Return True if the two words are anagrams of each other (same letters, ignoring case).",
        "    counts: dict[str, int] = {{}}\n    for ch in first.lower():\n        counts[ch] = counts.get(ch, 0) + 1\n"
        "    for ch in second.lower():\n        counts[ch] = counts.get(ch, 0) - 1\n"
        "    return all(count == 0 for count in counts.values())\n",
        lambda rng, p: [
            (a, b)
            for a, b in [
                ("listen", "silent"),
                ("Apple", "papel"),
                ("stone", "tones"),
                ("river", "liver"),
                ("", ""),
                (rng.choice(_WORDS), rng.choice(_WORDS)),
            ]
        ],
    ),
    Family(
        "moving_average",
        ("list", "float", "loop", "window", "statistics"),
        "def {name}(values: list[float], window: int) -> list[float]:",
        "Return the averages of every run of `window` consecutive values, rounded to {digits} decimals.",
        "    if window <= 0 or window > len(values):\n        return []\n"
        "    return [round(sum(values[i:i + window]) / window, {digits}) for i in range(len(values) - window + 1)]\n",
        lambda rng, p: [([float(v) for v in _ints(rng, 0, 50, (0, 9))], rng.randint(1, 4)) for _ in range(6)],
        lambda rng: {"digits": rng.choice([1, 2, 3])},
    ),
    Family(
        "pascal_row",
        ("list", "loop", "math", "sequence", "combinatorics"),
        "def {name}(n: int) -> list[int]:",
        "Return row n of Pascal's triangle (row 0 is [1]).",
        "    row = [1]\n    for _ in range(n):\n        row = [a + b for a, b in zip([0] + row, row + [0])]\n    return row\n",
        lambda rng, p: [(n,) for n in [0, 1, 2, 5, rng.randint(6, 15)]],
    ),
    Family(
        "flatten",
        ("recursion", "list", "nested", "data structure"),
        "def {name}(items: list) -> list:",
        "Flatten arbitrarily nested lists into one flat list, keeping the order of the elements.",
        "    result = []\n    for item in items:\n        if isinstance(item, list):\n"
        "            result.extend({name}(item))\n        else:\n            result.append(item)\n    return result\n",
        lambda rng, p: [([1, [2, [3, 4]], 5],), ([],), ([[[]]],), ([[1, 2], [3, [4, [5]]]],), (_ints(rng, 0, 9),)],
    ),
    Family(
        "chunk",
        ("list", "slicing", "loop", "sequence"),
        "def {name}(items: list[int], size: int) -> list[list[int]]:",
        "Split `items` into consecutive chunks of length `size`; the last chunk may be shorter.",
        "    return [items[i:i + size] for i in range(0, len(items), size)]\n",
        lambda rng, p: [(_ints(rng, 0, 9, (0, 10)), rng.randint(1, 4)) for _ in range(6)],
    ),
    Family(
        "second_largest",
        ("list", "sorting", "set", "condition"),
        "def {name}(numbers: list[int]) -> int | None:",
        "Return the second largest distinct value in `numbers`, or None if there is none.",
        "    first = second = None\n    for n in numbers:\n        if first is None or n > first:\n"
        "            first, second = n, first\n        elif n != first and (second is None or n > second):\n"
        "            second = n\n    return second\n",
        lambda rng, p: [(_ints(rng, 0, 9, (0, 8)),) for _ in range(6)] + [([3, 3],)],
    ),
    Family(
        "title_case",
        ("string", "method", "text", "loop"),
        "def {name}(text: str) -> str:",
        "Capitalise the first letter of every word of `text` and lower-case the rest; words are separated by single spaces.",
        "    return ' '.join(word[:1].upper() + word[1:].lower() for word in text.split(' '))\n",
        lambda rng, p: [
            (" ".join(w.upper() if rng.random() < 0.3 else w for w in _words(rng, (1, 5))),) for _ in range(6)
        ],
    ),
    Family(
        "class_counter",
        ("class", "object", "method", "state", "object-oriented"),
        "def {name}(events: list[str]) -> dict[str, int]:",
        "Feed every event name to a Counter-like class with an `add` method and return its final counts.",
        "    class Tally:\n        def __init__(self) -> None:\n            self.counts: dict[str, int] = {{}}\n\n"
        "        def add(self, event: str) -> None:\n            self.counts[event] = self.counts.get(event, 0) + 1\n\n"
        "    tally = Tally()\n    for event in events:\n        tally.add(event)\n    return tally.counts\n",
        lambda rng, p: [(_words(rng),) for _ in range(5)],
    ),
    Family(
        "safe_divide",
        ("exception", "error handling", "arithmetic", "try"),
        "def {name}(a: float, b: float) -> float | None:",
        "Return a / b rounded to 3 decimals, or None when b is zero (catch the ZeroDivisionError).",
        "    try:\n        return round(a / b, 3)\n    except ZeroDivisionError:\n        return None\n",
        lambda rng, p: [(float(rng.randint(-50, 50)), float(rng.choice([0, rng.randint(-9, 9)]))) for _ in range(6)],
    ),
    Family(
        "squares_gen",
        ("generator", "yield", "iterator", "loop", "comprehension"),
        "def {name}(n: int) -> list[int]:",
        "Use a generator function that yields the squares of the odd numbers below n, and return them as a list.",
        "    def odd_squares(limit: int):\n        for k in range(1, limit, 2):\n            yield k * k\n\n"
        "    return list(odd_squares(n))\n",
        lambda rng, p: [(n,) for n in [0, 1, 2, 7, rng.randint(8, 30)]],
    ),
)


def choose_family(topic_text: str, rng: random.Random) -> Family:
    """A family whose words overlap the topic, else any; the rng decides among equals."""
    lowered = topic_text.lower()
    scored = [(sum(word in lowered for word in f.words), f) for f in FAMILIES]
    best = max(score for score, _ in scored)
    pool = [f for score, f in scored if score == best] if best > 0 else list(FAMILIES)
    return rng.choice(pool)


@dataclass(frozen=True)
class Exercise:
    code: str  # signature + docstring + solution (+ imports)
    tests: list[str]  # assert statements
    example_call: str
    example_output: str


def build(family: Family, name: str, rng: random.Random) -> Exercise:
    params = family.params(rng)
    fmt = {"name": name, **params}
    solution = family.body.format(**fmt)
    signature = family.signature.format(**fmt)
    doc = family.doc.format(**fmt)
    namespace: dict[str, Any] = {}
    exec(compile(f"{family.imports}{signature}\n{solution}", f"<offline:{family.key}>", "exec"), namespace)
    fn = namespace[name]
    cases = []
    for args in family.inputs(rng, params):
        out = fn(*copy.deepcopy(args))
        call = f"{name}({', '.join(repr(a) for a in args)})"
        cases.append((call, out))
    # Keep distinct calls; the first with a non-trivial output becomes the docstring example.
    seen, unique = set(), []
    for call, out in cases:
        if call not in seen:
            seen.add(call)
            unique.append((call, out))
    example_call, example_out = next(((c, o) for c, o in unique if o not in (None, [], "", 0)), unique[0])
    docstring = f'    """{doc}\n\n    >>> {example_call}\n    {example_out!r}\n    """\n'
    code = f"{family.imports}{signature}\n{docstring}{solution}"
    tests = [_assert(call, out) for call, out in unique[:8]]
    return Exercise(code, tests, example_call, repr(example_out))


def _assert(call: str, out: Any) -> str:
    if out is None:
        return f"assert {call} is None"
    return f"assert {call} == {out!r}"
