"""The HumanEval+ checker: what runs inside the sandbox, before a completion's code, to judge it as EvalPlus
does. Its source is sent as a program's first stage (`phi1.evaluate.benchmarks`), followed by one line of
per-problem data (`_phi1_input_bytes`) and the calls that compute the references or build `_phi1_check`.

Every program starts a fresh interpreter, so what this imports is paid on each of them: json (~8 ms here),
pickle (~9 ms) and signal (~5 ms, for enum) are not imported unless a program needs them: inputs and
reference outputs travel as marshal bytes. Imported (as by the tests), it runs nothing. The names it leaves
for the completion's code are those it left as string templates: the helpers, `time` and `_phi1_check`.
"""

import time

_phi1_input_bytes = b""  # the problem's base + plus inputs, marshalled: set by the line after this source


def _phi1_inputs():
    """A fresh copy of the problem's inputs on every call (marshal: a builtin module, C speed)."""
    return __import__("marshal").loads(_phi1_input_bytes)


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
            if min(v) >= -(2**53) and max(v) <= 2**53:
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


def _phi1_reference(source, entry, keep_all, inline, digest):
    """The trusted canonical solution on every input: its outputs and times. Large outputs become digests when
    they are printed for other samples; a problem's only sample compares with them as they are (`keep_all`)."""
    ns = {"__name__": "_phi1_reference"}
    exec(compile(source, "<reference>", "exec"), ns)
    fn = ns[entry]
    expected, times = [], []
    for inp in _phi1_inputs():
        t = time.perf_counter()
        out = fn(*inp)
        times.append(time.perf_counter() - t)
        if keep_all or _phi1_is_floats(out) or _phi1_size(out, inline) <= inline:
            expected.append(out)
        else:
            expected.append((digest, _phi1_digest(out)))
    return {"expected": expected, "times": times}


def _phi1_record(reference):
    """Print the reference times and outputs for the References cache (when later samples of the problem will
    use them), before any candidate code exists: nothing later can change them. marshal (builtin: free to
    import) holds the usual outputs; pickle the rest."""
    import binascii
    import marshal
    import sys

    sys.stdout.write(repr(reference["times"]) + "\n")
    try:
        payload = "m" + binascii.b2a_base64(marshal.dumps(reference["expected"]), newline=False).decode()
    except ValueError:
        import pickle

        payload = "p" + binascii.b2a_base64(pickle.dumps(reference["expected"], protocol=4), newline=False).decode()
    sys.stdout.write(payload + "\n")
    sys.stdout.flush()


def _phi1_make_check(data, n_base, atol_value, find_zero, digest):
    """`check(fn, part)` compares like EvalPlus: exact, or once a float output has been seen, np.allclose-style
    with the task's atol (1e-6 when it is 0) and rtol 1e-7; find_zero by its root."""
    import _signal  # not `signal`: that imports enum, ~5 ms of every program's start

    inputs = _phi1_inputs()  # the candidate's own copy: the reference may have changed its arguments
    parts = {"base": (0, n_base), "plus": (n_base, len(inputs))}
    atol = [atol_value]

    class Slow(BaseException):  # not an Exception: a bare `except Exception` in the candidate cannot swallow it
        pass

    def alarm(signum, frame):
        raise Slow()

    def close(a, b, tol):
        if isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(
                close(x, y, tol) for x, y in zip(a, b, strict=False)
            )  # lengths are equal here
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
                raise AssertionError(f"{part} input #{i}: over its time limit of {limit:.2f}s") from None
            finally:
                _signal.setitimer(_signal.ITIMER_REAL, 0)
            if isinstance(exp, tuple) and len(exp) == 2 and exp[0] == digest:
                assert _phi1_digest(out) == exp[1], f"{part} input #{i}: wrong output"
                continue
            if find_zero:
                value = sum(c * out**k for k, c in enumerate(inp[0]))
                assert abs(value) <= atol[0], f"{part} input #{i}: not a root"
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
            assert atol[0] != 0, f"{part} input #{i}: wrong output"
            assert type(out) is type(exp), f"{part} input #{i}: wrong output type"
            assert close(out, exp, atol[0]), f"{part} input #{i}: wrong output"

    return check
