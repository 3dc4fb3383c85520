"""The offline teacher's catalogue of exercise families: small, classic, textbook-style functions with a
parameter or two, each written out by hand with a correct solution. Test cases are produced by running
the (trusted, hand-written) solution on generated inputs, so every exercise passes its own tests."""

from __future__ import annotations

import copy
import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
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
    # A name that says what the function does (a template over the params: "sum_squares_divisible_by_{k}");
    # default: one of NAMES[key].
    name: Callable[[random.Random], str] | None = None


def random_ints(rng: random.Random, lo: int = -20, hi: int = 20, n: tuple[int, int] = (0, 9)) -> list[int]:
    """A list of n[0]..n[1] integers in [lo, hi]: the test inputs of list families (here and offline_composed)."""
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
        "count_multiples",
        ("loop", "list", "number", "arithmetic", "condition", "filter"),
        "def {name}(numbers: list[int]) -> tuple[int, int]:",
        "Return (how many, their sum) of the numbers in `numbers` that are divisible by {k}.",
        "    matches = [n for n in numbers if n % {k} == 0]\n    return len(matches), sum(matches)\n",
        lambda rng, p: [(random_ints(rng),) for _ in range(6)] + [([],)],
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
        "cap_repeats",
        ("list", "dictionary", "order", "loop", "data structure", "count"),
        "def {name}(items: list[int], limit: int) -> list[int]:",
        "Return the items of `items` in order, keeping only the first `limit` occurrences of each value.",
        "    seen: dict[int, int] = {{}}\n    kept = []\n    for item in items:\n"
        "        seen[item] = seen.get(item, 0) + 1\n        if seen[item] <= limit:\n            kept.append(item)\n"
        "    return kept\n",
        lambda rng, p: [(random_ints(rng, 0, 4, (0, 10)), rng.randint(1, 3)) for _ in range(6)],
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
        "binary_search_probes",
        ("algorithm", "search", "list", "loop", "sorting"),
        "def {name}(items: list[int], target: int) -> list[int]:",
        "Search the sorted list `items` for `target` by binary search and return the indices it looks at, in "
        "order (the last one holds `target` if it is present).",
        "    probes = []\n    lo, hi = 0, len(items) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n"
        "        probes.append(mid)\n        if items[mid] == target:\n            break\n"
        "        if items[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid - 1\n"
        "    return probes\n",
        lambda rng, p: [
            (s, rng.choice(s) if s and rng.random() < 0.6 else rng.randint(-5, 60))
            for s in (sorted(set(random_ints(rng, 0, 50, (0, 12)))) for _ in range(7))
        ],
    ),
    Family(
        "merge_intervals",
        ("list", "sorting", "algorithm", "loop", "interval"),
        "def {name}(intervals: list[list[int]]) -> list[list[int]]:",
        "Merge overlapping closed intervals [start, end] (given in any order) and return them sorted by start.",
        "    merged: list[list[int]] = []\n    for start, end in sorted(intervals):\n"
        "        if merged and start <= merged[-1][1]:\n            merged[-1][1] = max(merged[-1][1], end)\n"
        "        else:\n            merged.append([start, end])\n    return merged\n",
        lambda rng, p: [([sorted(rng.sample(range(0, 30), 2)) for _ in range(rng.randint(0, 5))],) for _ in range(6)],
    ),
    Family(
        "diagonal_sums",
        ("list", "matrix", "nested", "loop", "index"),
        "def {name}(matrix: list[list[int]]) -> tuple[int, int]:",
        "Return the sums of the main diagonal and of the anti-diagonal of a square matrix given as a list of rows.",
        "    n = len(matrix)\n    main = sum(matrix[i][i] for i in range(n))\n"
        "    anti = sum(matrix[i][n - 1 - i] for i in range(n))\n    return main, anti\n",
        lambda rng, p: (
            [([[rng.randint(-9, 9) for _ in range(n)] for _ in range(n)],) for n in (1, 2, 3, 4, 5)] + [([],)]
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
        lambda rng, p: [(random_ints(rng),) for _ in range(6)],
    ),
    Family(
        "rotate_matrix",
        ("list", "matrix", "sequence", "modulo", "nested"),
        "def {name}(matrix: list[list[int]], turns: int) -> list[list[int]]:",
        "Rotate a square matrix (a list of rows) by 90 degrees {direction}, `turns` times, and return the result.",
        "    for _ in range(turns % 4):\n        matrix = {expr}\n    return [list(row) for row in matrix]\n",
        lambda rng, p: [
            ([[rng.randint(0, 9) for _ in range(n)] for _ in range(n)], rng.randint(0, 6)) for n in (1, 2, 3, 3, 4)
        ],
        lambda rng: rng.choice(
            [
                {"direction": "clockwise", "expr": "[list(row) for row in zip(*matrix[::-1])]"},
                {"direction": "anticlockwise", "expr": "[list(row) for row in zip(*matrix)][::-1]"},
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
        "make_change",
        ("number", "dictionary", "conversion", "loop", "greedy"),
        "def {name}(amount: int) -> dict[int, int]:",
        "Pay `amount` cents greedily with coins of {coins} cents: return how many of each coin is used, largest "
        "coin first, leaving out coins that are not used.",
        "    counts = {{}}\n    for coin in {coins!r}:\n        used, amount = divmod(amount, coin)\n"
        "        if used:\n            counts[coin] = used\n    return counts\n",
        lambda rng, p: [(n,) for n in [0, 1, 30, 99, rng.randint(1, 500), rng.randint(500, 5000)]],
        lambda rng: {"coins": rng.choice([(50, 20, 10, 5, 2, 1), (25, 10, 5, 1), (200, 100, 50, 20, 10, 5, 2, 1)])},
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
        "Return the prime numbers p with low <= p < high, in increasing order, testing divisors up to the square root.",
        "    result = []\n    for n in range(max(low, 2), high):\n        i = 2\n        while i * i <= n:\n"
        "            if n % i == 0:\n                break\n            i += 1\n        else:\n"
        "            result.append(n)\n    return result\n",
        lambda rng, p: [(lo, lo + rng.randint(0, 40)) for lo in (rng.randint(-5, 100) for _ in range(6))],
    ),
    Family(
        "digital_root",
        ("number", "loop", "arithmetic", "string", "recursion"),
        "def {name}(n: int) -> tuple[int, int]:",
        "Replace n (its sign ignored) by the sum of its decimal digits until one digit is left; return how many "
        "replacements it took and that digit.",
        "    n, steps = abs(n), 0\n    while n >= 10:\n        n = sum(int(d) for d in str(n))\n        steps += 1\n"
        "    return steps, n\n",
        lambda rng, p: [(rng.randint(-(10**6), 10**6),) for _ in range(6)] + [(0,), (9_999_999_999,)],
    ),
    Family(
        "anagram_groups",
        ("string", "sorting", "dictionary", "count", "list"),
        "def {name}(words: list[str]) -> list[list[str]]:",
        "Group the words that are anagrams of each other (same letters, ignoring case); return the groups of two "
        "or more words, each in input order, ordered by where the group first appears.",
        "    groups: dict[str, list[str]] = {{}}\n    for word in words:\n"
        "        groups.setdefault(''.join(sorted(word.lower())), []).append(word)\n"
        "    return [group for group in groups.values() if len(group) > 1]\n",
        lambda rng, p: [
            (["listen", "silent", "Enlist", "stone"],),
            (["Notes", "onset", "tones", "river", "liver"],),
            ([],),
            (_words(rng),),
            ([*_words(rng), "Tiger", "griet"],),
        ],
    ),
    Family(
        "moving_average",
        ("list", "float", "loop", "window", "statistics"),
        "def {name}(values: list[float], window: int) -> list[float]:",
        "Return the averages of every run of `window` consecutive values, rounded to {digits} decimals.",
        "    if window <= 0 or window > len(values):\n        return []\n"
        "    return [round(sum(values[i:i + window]) / window, {digits}) for i in range(len(values) - window + 1)]\n",
        lambda rng, p: [([float(v) for v in random_ints(rng, 0, 50, (0, 9))], rng.randint(1, 4)) for _ in range(6)],
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
        "flatten_depth",
        ("recursion", "list", "nested", "data structure"),
        "def {name}(items: list, depth: int) -> list:",
        "Flatten nested lists by at most `depth` levels (depth 0 returns a copy), keeping the order of the elements.",
        "    result = []\n    for item in items:\n        if isinstance(item, list) and depth > 0:\n"
        "            result.extend({name}(item, depth - 1))\n        else:\n            result.append(item)\n"
        "    return result\n",
        lambda rng, p: [
            ([1, [2, [3, 4]], 5], 1),
            ([], 2),
            ([[[]]], 1),
            ([[1, 2], [3, [4, [5]]]], rng.randint(0, 3)),
            ([[1, [2]], [[3]]], 2),
        ],
    ),
    Family(
        "sliding_windows",
        ("list", "slicing", "loop", "sequence", "window"),
        "def {name}(items: list[int], size: int, step: int) -> list[list[int]]:",
        "Return the windows of `size` consecutive items that start every `step` items; a window that would run "
        "past the end is left out.",
        "    windows = []\n    start = 0\n    while start + size <= len(items):\n"
        "        windows.append(items[start:start + size])\n        start += step\n    return windows\n",
        lambda rng, p: [(random_ints(rng, 0, 9, (0, 10)), rng.randint(1, 4), rng.randint(1, 3)) for _ in range(6)],
    ),
    Family(
        "kth_largest_distinct",
        ("list", "sorting", "set", "condition"),
        "def {name}(numbers: list[int], k: int) -> int | None:",
        "Return the k-th largest distinct value in `numbers` (k = 1 is the largest), or None if there is none.",
        "    distinct = sorted(set(numbers), reverse=True)\n    return distinct[k - 1] if 0 < k <= len(distinct) else None\n",
        lambda rng, p: [(random_ints(rng, 0, 9, (0, 8)), rng.randint(1, 4)) for _ in range(6)] + [([3, 3], 2)],
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
        "bank_account",
        ("class", "object", "method", "state", "object-oriented"),
        "def {name}(transactions: list[tuple[str, int]]) -> tuple[int, int]:",
        "Apply ('deposit', amount) and ('withdraw', amount) transactions to an Account class that refuses a "
        "withdrawal larger than its balance; return (final balance, number of refused withdrawals).",
        "    class Account:\n        def __init__(self) -> None:\n            self.balance = 0\n"
        "            self.refused = 0\n\n        def apply(self, kind: str, amount: int) -> None:\n"
        "            if kind == 'deposit':\n                self.balance += amount\n"
        "            elif amount <= self.balance:\n                self.balance -= amount\n"
        "            else:\n                self.refused += 1\n\n"
        "    account = Account()\n    for kind, amount in transactions:\n        account.apply(kind, amount)\n"
        "    return account.balance, account.refused\n",
        lambda rng, p: [
            ([(rng.choice(["deposit", "withdraw"]), rng.randint(1, 50)) for _ in range(rng.randint(0, 6))],)
            for _ in range(5)
        ],
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
        "triangular_gen",
        ("generator", "yield", "iterator", "loop", "comprehension"),
        "def {name}(n: int) -> list[int]:",
        "Use an endless generator of the triangular numbers 1, 3, 6, 10, ... and return those below n as a list.",
        "    def triangular():\n        total, k = 0, 1\n        while True:\n            total += k\n"
        "            yield total\n            k += 1\n\n    result = []\n    for value in triangular():\n"
        "        if value >= n:\n            break\n        result.append(value)\n    return result\n",
        lambda rng, p: [(n,) for n in [0, 1, 2, 7, rng.randint(8, 60)]],
    ),
)


# Synonyms for each hand-written family, in the naming styles of HumanEval (descriptive snake_case) and MBPP
# (often a verb first): a name says what the function does, as the benchmarks' names do.
NAMES: dict[str, tuple[str, ...]] = {
    "count_multiples": ("count_and_sum_multiples_of_{k}", "multiples_of_{k}_count_and_sum", "tally_multiples_of_{k}"),
    "count_vowels": ("count_vowels", "vowel_count", "number_of_vowels", "find_vowel_count"),
    "palindromic_words": ("palindromic_words", "find_palindrome_words", "palindromes_in_text"),
    "fibonacci": ("fibonacci_like", "generalized_fibonacci", "nth_term_from_{a}_and_{b}"),
    "reduce_fraction": ("reduce_fraction", "simplify_fraction", "to_lowest_terms"),
    "cap_repeats": ("limit_repeats", "cap_occurrences", "keep_first_occurrences"),
    "word_frequency": ("word_frequency", "count_words", "word_counts"),
    "binary_search_probes": ("binary_search_probes", "binary_search_trace", "probed_indices"),
    "merge_intervals": ("merge_intervals", "merge_overlapping_intervals", "combine_ranges"),
    "diagonal_sums": ("diagonal_sums", "sum_both_diagonals", "find_diagonal_totals"),
    "running_range": ("running_range", "prefix_spread", "range_so_far"),
    "rotate_matrix": ("rotate_matrix", "rotate_grid", "turn_matrix_{direction}"),
    "caesar": ("caesar_shift", "caesar_cipher", "shift_letters"),
    "nesting_depth": ("nesting_depth", "max_bracket_depth", "bracket_nesting_level"),
    "make_change": ("make_change", "greedy_coins", "count_coins_greedily"),
    "run_length": ("run_length_encode", "rle_encode", "compress_runs"),
    "primes_between": ("primes_between", "primes_in_range", "list_primes_from_low_to_high"),
    "digital_root": ("digital_root", "repeated_digit_sum", "digit_sum_until_single"),
    "anagram_groups": ("anagram_groups", "group_anagrams", "find_anagram_sets"),
    "moving_average": ("moving_average", "rolling_mean", "window_averages"),
    "pascal_row": ("pascal_row", "pascal_triangle_row", "binomial_row"),
    "flatten_depth": ("flatten_depth", "flatten_levels", "partial_flatten"),
    "sliding_windows": ("sliding_windows", "window_slices", "chunk_with_step"),
    "kth_largest_distinct": ("kth_largest_distinct", "kth_biggest_unique", "find_kth_largest_value"),
    "title_case": ("title_case", "capitalize_words", "to_title_case"),
    "bank_account": ("bank_account_balance", "apply_transactions", "simulate_account"),
    "safe_divide": ("safe_divide", "divide_or_none", "checked_division"),
    "triangular_gen": ("triangular_below", "triangular_numbers_below", "list_triangular_numbers"),
}


def name_template(family: Family, rng: random.Random) -> str:
    """A name for an exercise of `family`, as a template over its params."""
    return family.name(rng) if family.name is not None else rng.choice(NAMES[family.key])


@lru_cache(maxsize=1)
def all_families() -> tuple[Family, ...]:
    """The hand-written catalogue and the composed families (`offline_composed`)."""
    from phi1.teacher.offline_composed import composed_families

    return FAMILIES + composed_families()


def choose_family(topic_text: str, rng: random.Random, families: tuple[Family, ...] = FAMILIES,
                  min_pool: int | None = None) -> Family:  # fmt: skip
    """A family whose words overlap the topic most, else any; the rng decides among them. With `min_pool`: any
    family the topic touches, and any at all where fewer than `min_pool` do (so that no few families are
    drawn again and again)."""
    lowered = topic_text.lower()
    scored = [(sum(word in lowered for word in f.words), f) for f in families]
    best = max(score for score, _ in scored)
    pool = [f for score, f in scored if score >= (best if min_pool is None else 1)] if best > 0 else list(families)
    if min_pool is not None and len(pool) < min_pool:
        pool = list(families)
    return rng.choice(pool)


@dataclass(frozen=True)
class Exercise:
    code: str  # signature + docstring + solution (+ imports)
    tests: list[str]  # assert statements
    example_call: str
    example_output: str


def build(family: Family, name: str, rng: random.Random) -> Exercise:
    """An exercise of `family` named `name` (a template over the family's params, or a plain name)."""
    params = family.params(rng)
    name = name.format(**params)
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
    doc = textwrap.fill(doc, 100, subsequent_indent="    ")  # a docstring wraps, as HumanEval's do
    docstring = f'    """{doc}\n\n    >>> {example_call}\n    {example_out!r}\n    """\n'
    code = f"{family.imports}{signature}\n{docstring}{solution}"
    tests = [_assert(call, out) for call, out in unique[:8]]
    return Exercise(code, tests, example_call, repr(example_out))


def _assert(call: str, out: Any) -> str:
    if out is None:
        return f"assert {call} is None"
    return f"assert {call} == {out!r}"
