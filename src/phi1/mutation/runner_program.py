"""The mutation run's program, run in the sandbox after any trusted setup stages (the HumanEval+ checker): it
runs the tests against the reference and then against each mutant, each in a fresh copy of the setup's
namespace under an alarm of its own, and prints one line per program as it finishes, so a mutant that takes
the whole program down loses nothing before it (`phi1.mutation.score` runs the rest again). Its source is
sent as a stage, followed by one call of `_phi1_mutation_run`; imported, it runs nothing.

The reference is held to the dataset's own limit (`reference_s`, CPU time): a benchmark may allow a program a
minute (HumanEval+), and its reference is not wrong for taking more than a mutant may. A mutant's alarm is on
CPU time: `factor` times the reference's own CPU time, at least `floor_s` and at most `cap_s`, so a change
that makes the tests ten times slower is a timeout, counted apart from kills. CPU time, not wall time, so that
a busy machine (other sandboxes on every core) does not turn a slow start into a timeout, and the floor can be
small: most mutants that time out loop forever, and each costs its floor. A wall-clock alarm of twice `cap_s`
stops a mutant that waits without computing. (The printout could be forged by a mutant; mutants are made by
phi1 from a solution, not written by a model.)
"""

import signal as _phi1_msignal
import time as _phi1_mtime

REFERENCE_WALL = 6  # the reference's wall-clock alarm, in multiples of its CPU limit


class _Phi1MutantSlow(BaseException):  # not an Exception: a bare `except Exception` in the tests cannot swallow it
    pass


def _phi1_mutant_alarm(*args: object) -> None:
    raise _Phi1MutantSlow()


def _phi1_run_one(source: str, tests: list, base: dict, cpu_s: float, wall_s: float) -> str:
    """'survived', 'killed <stage>' or 'timeout' for one program against the tests."""
    try:
        program = compile(source, "<mutant>", "exec")
    except (SyntaxError, ValueError):
        return "invalid"
    ns = dict(base)
    stage = -1
    _phi1_msignal.setitimer(_phi1_msignal.ITIMER_PROF, cpu_s)
    _phi1_msignal.setitimer(_phi1_msignal.ITIMER_REAL, wall_s)
    try:
        exec(program, ns)
        for stage, test in enumerate(tests):  # noqa: B007 - the failing stage is reported below
            exec(test, ns)
        return "survived"
    except _Phi1MutantSlow:
        return "timeout"
    except BaseException:
        return f"killed {stage}"
    finally:
        _phi1_msignal.setitimer(_phi1_msignal.ITIMER_PROF, 0)
        _phi1_msignal.setitimer(_phi1_msignal.ITIMER_REAL, 0)


class _Phi1VerifySlow(BaseException):
    pass


def _phi1_verify_alarm(*args: object) -> None:
    raise _Phi1VerifySlow()


def _phi1_guard(timeout_s: float) -> None:
    """Stop the stages that follow after `timeout_s` (an exercise's own run, before its mutants' stage): the
    harness reports `_Phi1VerifySlow`, read as a timeout, and the program's own limit stays a backstop."""
    _phi1_msignal.signal(_phi1_msignal.SIGALRM, _phi1_verify_alarm)
    _phi1_msignal.setitimer(_phi1_msignal.ITIMER_REAL, timeout_s)


def _phi1_mutation_run(
    reference: str,
    mutants: list[str],
    first: int,
    tests: list[str],
    factor: float,
    floor_s: float,
    cap_s: float,
    reference_s: float,
) -> None:
    """Print 'PHI1-REF <status> <seconds>' for the reference, then 'PHI1-MUTANT <index> <status>' for each
    mutant from index `first` on (stopping early when the reference does not pass)."""
    _phi1_msignal.setitimer(_phi1_msignal.ITIMER_REAL, 0)  # a guard's alarm ends here
    for signum in (_phi1_msignal.SIGALRM, _phi1_msignal.SIGPROF):
        _phi1_msignal.signal(signum, _phi1_mutant_alarm)
    base = dict(globals())
    try:  # compiled once: every mutant runs the same tests
        tests = [compile(test, f"<test{stage}>", "exec") for stage, test in enumerate(tests)]
    except BaseException:
        print("PHI1-REF killed:0 0", flush=True)
        return
    start = _phi1_mtime.process_time()
    # The reference's wall allowance is wider than a mutant's: a reference that times out voids the whole score,
    # and on a machine whose cores are shared (CI running tests side by side) wall time runs several times CPU.
    status = _phi1_run_one(reference, tests, base, reference_s, REFERENCE_WALL * reference_s)
    took = _phi1_mtime.process_time() - start
    print(f"PHI1-REF {status.replace(' ', ':')} {took:.6f}", flush=True)
    if status != "survived":
        return
    alarm_s = min(cap_s, max(floor_s, factor * took))
    for i, source in enumerate(mutants):
        print(f"PHI1-MUTANT {first + i} {_phi1_run_one(source, tests, base, alarm_s, 2 * cap_s)}", flush=True)
