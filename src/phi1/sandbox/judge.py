"""The verdict on one run: passed only when every test stage reported with the nonce and the program exited
0; otherwise what went wrong (a failed assertion, an exception, a limit, a signal)."""

from __future__ import annotations

import signal

from phi1.sandbox.types import Limits, Status, Verdict


def judge(
    nonce: bytes,
    n_tests: int,
    returncode: int | None,
    out: bytes,
    err: bytes,
    report: bytes,
    reason: str | None,
    wall: float,
    limits: Limits,
) -> Verdict:
    stages_passed = 0
    failure = ""
    for line in report.splitlines():
        head, _, rest = line.partition(b" ")
        if head == nonce and rest.strip() == str(stages_passed + 1).encode():
            stages_passed += 1
        elif head in (b"failed", b"error") and not failure:
            failure = line.decode("utf-8", "replace")
    stdout = out[: limits.output_bytes].decode("utf-8", "replace")
    stderr = err[: limits.output_bytes].decode("utf-8", "replace")

    def verdict(status: Status, detail: str, stage: int | None = None) -> Verdict:
        return Verdict(status, detail[:500], stages_passed, wall, returncode, stdout, stderr, stage)

    if reason == "timeout":
        return verdict("timeout", f"no result after {limits.timeout_s:g}s wall time")
    if reason == "output":
        return verdict("killed", f"output exceeded {limits.output_bytes} bytes")
    if reason == "report":
        return verdict("killed", "flooded the report channel")
    if returncode == 0 and stages_passed == n_tests and not failure:
        return verdict("passed", "")
    if failure:
        kind, _, rest = failure.partition(" ")
        stage, _, msg = rest.partition(" ")
        return verdict("failed" if kind == "failed" else "error", msg, int(stage))
    if returncode is not None and (returncode < 0 or returncode >= 128):
        signum = -returncode if returncode < 0 else returncode - 128
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
        hint = {
            "SIGKILL": "memory, CPU or process limit",
            "SIGXCPU": "CPU time limit",
            "SIGXFSZ": "file size limit",
            "SIGSEGV": "crash",
        }.get(name, "signal")
        return verdict("killed", f"killed by {name} ({hint})")
    tail = stderr.strip().splitlines()[-1:] or [""]
    return verdict(
        "failed",
        f"exited with status {returncode} before the tests finished"
        + (f" ({stages_passed}/{n_tests} test stages)" if n_tests > 1 else "")
        + (f": {tail[0]}" if tail[0] else ""),
    )
