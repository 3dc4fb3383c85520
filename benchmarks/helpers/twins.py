"""What the execution-twin benchmarks share: HumanEval's and MBPP's problems as clean runs them (entry point and
tests, arity), and HumanEval solutions renamed as planted twins that both of a benchmark's arms must find."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from phi1.clean.shards import Benchmarks, problems_of, runnable
from phi1.clean.twins import Function, functions_of


def benchmark_problems() -> tuple[tuple[Any, ...], list[tuple[str, str]], list[int | None]]:
    """(problems, their (entry point, tests), their arities: None where a problem cannot be run)."""
    source = Benchmarks()
    problems = problems_of(source)
    return problems, [(p.entry_point, p.test) for p in problems], runnable(source)[1]


def planted_twins(problems: Any, kind: str, first_sample: int, name: Callable[[int, str], str]) -> list[Function]:
    """Each problem's own solution as a function named `name(k, entry point)`: a twin of problem k that only
    execution can tell, as sample `first_sample + k`."""
    out = []
    for k, p in enumerate(problems):
        for f in functions_of(p.solution, kind, first_sample + k):
            if f.name == p.entry_point:
                new = name(k, p.entry_point)
                out.append(Function(f.sample, new, f.arity, re.sub(rf"\b{p.entry_point}\b", new, f.source)))
    return out
