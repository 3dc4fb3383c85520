"""The program that runs inside the sandbox, as `python -I -S -c <this file's source>` (as root when the
host is root). It reads from stdin one header line "nonce report_fd uid rlimit=value... ; stage byte
lengths" and then the stages' bytes; sets the limits, drops to `uid` (bwrap already set no_new_privs and
mounts everything nosuid, so no capability can come back), and only then runs the stages, reporting each
finished test stage on the report pipe with the nonce. It imports nothing but `os`, `sys` and `resource`:
every module costs start-up time on each of thousands of runs. Imported (as by the tests), it runs nothing.
"""

import os
import sys


def _phi1_harness() -> None:
    raw = sys.stdin.buffer.read()
    header, _, body = raw.partition(b"\n")
    settings, _, lengths = header.partition(b" ; ")
    fields = settings.split()
    nonce, report_fd, uid = fields[0], int(fields[1]), int(fields[2])
    if len(fields) > 3:
        import resource

        for item in fields[3:]:
            name, _, value = item.decode().partition("=")
            resource.setrlimit(getattr(resource, name), (int(value), int(value)))
    if uid >= 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    stages, pos = [], 0
    for n in lengths.split():
        stages.append(body[pos : pos + int(n)])
        pos += int(n)
    del raw, body, header
    report = os.fdopen(report_fd, "wb", buffering=0)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    for index, source in enumerate(stages):
        try:
            exec(compile(source, f"<stage{index}>", "exec"), namespace)
        except BaseException as exc:
            kind = "failed" if isinstance(exc, (AssertionError, SystemExit)) else "error"
            text = f"{kind} {index} {type(exc).__name__}: {exc}"[:400]
            try:
                report.write(text.replace("\n", " ").encode("utf-8", "replace") + b"\n")
            finally:
                _phi1_exit(1)
        if index:
            report.write(nonce + b" %d\n" % index)
    report.close()
    _phi1_exit(0)


def _phi1_exit(code: int) -> None:
    # os._exit skips the flush of buffered output; the program's output is still wanted.
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would be one more import on every run
            stream.flush()
        except BaseException:
            pass
    os._exit(code)


if __name__ == "__main__":
    _phi1_harness()
