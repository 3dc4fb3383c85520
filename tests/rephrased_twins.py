"""Rephrased twins of HumanEval problems, written for phi1's tests (not LMSYS's released rephrased samples,
which stay out of tests and tuning as an independent check): each renamed, with its loops restructured,
filler statements added, and for some a detail of the task changed, so that it no longer passes the
problem's tests and only a judge that reads it can tell. As an exercise it is the whole sample; as corpus
code it sits in a module among unrelated functions, as a file of The Stack would hold it."""

from __future__ import annotations

# task id -> (how it was rephrased, the code)
TWINS: dict[str, tuple[str, str]] = {
    "HumanEval/0": (
        "renamed, restructured, filler",
        '''
def any_pair_within(readings, tolerance):
    """Report whether two of the readings lie closer together than the tolerance."""
    ordered = sorted(readings)
    checked = 0
    index = 1
    while index < len(ordered):
        checked += 1
        if ordered[index] - ordered[index - 1] < tolerance:
            return True
        index += 1
    return False
''',
    ),
    "HumanEval/4": (
        "renamed, filler, docstring reworded",
        '''
def average_distance_from_mean(samples):
    """How far, on average, each sample sits from the mean of all samples."""
    n = len(samples)
    centre = sum(samples) / n
    spread = [abs(s - centre) for s in samples]
    result = sum(spread) / n
    return result
''',
    ),
    "HumanEval/11": (
        "renamed, restructured",
        '''
def xor_bit_strings(left, right):
    """Combine two strings of 0s and 1s bit by bit with exclusive or."""
    out = []
    for a, b in zip(left, right):
        out.append("0" if a == b else "1")
    return "".join(out)
''',
    ),
    "HumanEval/16": (
        "renamed, a detail changed: case counts",
        '''
def how_many_different_letters(text):
    """Count the different characters in the text; upper and lower case count apart."""
    seen = set()
    for ch in text:
        seen.add(ch)
    return len(seen)
''',
    ),
    "HumanEval/26": (
        "renamed, restructured, filler",
        '''
def drop_repeated_values(numbers):
    """Keep only the numbers that appear exactly once, in their original order."""
    tally = {}
    for value in numbers:
        tally[value] = tally.get(value, 0) + 1
    kept = []
    for value in numbers:
        if tally[value] == 1:
            kept.append(value)
    return kept
''',
    ),
    "HumanEval/34": (
        "renamed, a detail changed: descending",
        '''
def distinct_sorted(values):
    """The distinct values of the list, largest first."""
    return sorted(set(values), reverse=True)
''',
    ),
    "HumanEval/35": (
        "renamed, restructured",
        '''
def largest_item(items):
    """The biggest element of a non-empty list."""
    best = items[0]
    for item in items[1:]:
        if item > best:
            best = item
    return best
''',
    ),
    "HumanEval/43": (
        "renamed, restructured, filler",
        '''
def two_cancel_out(nums):
    """True when two different positions of the list hold numbers that add up to zero."""
    seen = set()
    for position, value in enumerate(nums):
        if -value in seen:
            return True
        seen.add(value)
    return False
''',
    ),
    "HumanEval/52": (
        "renamed, a detail changed: at or below",
        '''
def all_under_limit(values, limit):
    """True if no value in the list is above the limit."""
    for v in values:
        if v > limit:
            return False
    return True
''',
    ),
    "HumanEval/58": (
        "renamed, restructured",
        '''
def shared_elements(first, second):
    """The elements both lists contain, once each, in increasing order."""
    both = set(first) & set(second)
    return sorted(both)
''',
    ),
}

# Unrelated functions a corpus file holds around a twin.
NEIGHBOURS = '''
import os


def read_config(path):
    """Read KEY=VALUE lines from a file into a dict, skipping comments."""
    values = {}
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def ensure_folder(path):
    os.makedirs(path, exist_ok=True)
    return path
'''

# Each twin as corpus code: a module with the twin between unrelated functions.
MAIN = '\n\ndef main():\n    print(ensure_folder("out"))\n'
AS_CODE = {tid: NEIGHBOURS + code + MAIN for tid, (_, code) in TWINS.items()}
