"""The execution sweep's program, run in the sandbox after one teacher-written function (`phi1.clean.twins`):
it tries every benchmark problem of the function's arity, each test in a copy of the namespace with the
function bound to the entry point and an alarm of its own, and prints the problems whose tests passed. (The
printout could be forged by the function; a training sample that forges its own contamination only gets
itself removed.) Its source is sent as a stage with the problems' tests, compiled (`_phi1_cases` reads them:
the driver compiles each problem's tests once per sweep, not every program all of them again); one call of
`_phi1_sweep` is the next stage. Imported, it runs nothing.
"""

import base64 as _phi1_base64
import json as _phi1_json
import marshal as _phi1_marshal
import signal as _phi1_signal


class _Phi1Slow(BaseException):  # not an Exception: a bare `except Exception` in the tests cannot swallow it
    pass


def _phi1_alarm(*args: object) -> None:
    raise _Phi1Slow()


def _phi1_cases(blob: bytes) -> list:
    """(problem, entry point, compiled tests) of each case, as `phi1.clean.twins.compiled_cases` wrote them (the
    same interpreter runs the driver and the sandbox, so its marshal format is this one's)."""
    return _phi1_marshal.loads(_phi1_base64.b64decode(blob))


def _phi1_sweep(cases: list[tuple[int, str, object]], name: str, per_test: float) -> list[int]:
    """Run each (problem, entry point, tests) with the function `name` as the entry point; print and return
    the problems whose tests passed."""
    _phi1_signal.signal(_phi1_signal.SIGALRM, _phi1_alarm)
    passed = []
    for j, entry, test in cases:
        ns = dict(globals())
        ns[entry] = ns[name]
        _phi1_signal.setitimer(_phi1_signal.ITIMER_REAL, per_test)
        try:
            exec(test, ns)
            passed.append(j)
        except BaseException:
            pass
        finally:
            _phi1_signal.setitimer(_phi1_signal.ITIMER_REAL, 0)
    print("PHI1-TWINS " + _phi1_json.dumps(passed))
    return passed
