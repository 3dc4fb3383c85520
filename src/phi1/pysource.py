"""Parse Python that phi1 was handed (corpus files, teacher answers, model completions, mutants of them).

Such code is full of regexes written without a raw string (`"\\d+"`), which the compiler warns about: Python 3.12
prints a SyntaxWarning for each (3.11 a DeprecationWarning, hidden by default), so a real corpus would print
thousands of lines over the progress bars, and under `-W error` the same code raised SyntaxError and counted as
code that does not parse. Parsed here, it is parsed the same whatever the user's warning filters say.

The parses carry a file name of their own, and one filter, installed once, ignores the compiler's warnings
about that file name only: `warnings.catch_warnings` would be simpler, but it swaps the process's filters and
is not thread-safe, and the exercise checks parse in threads.
"""

from __future__ import annotations

import ast
import re
import warnings

FILENAME = "<untrusted>"

for _category in (SyntaxWarning, DeprecationWarning):
    warnings.filterwarnings("ignore", category=_category, module=re.escape(FILENAME) + r"\Z")


def parse(source: str) -> ast.Module:
    """`ast.parse(source)`, without the compiler's warnings; raises SyntaxError (or ValueError for a NUL
    byte) as it does."""
    return ast.parse(source, filename=FILENAME)


def compiles(source: str) -> bool:
    """Whether `source` compiles (the parse and the compiler's own checks, such as `return` outside a
    function), without the compiler's warnings."""
    try:
        compile(source, FILENAME, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True
