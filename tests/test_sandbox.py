"""The sandbox against honest programs and against attacks: each attack is contained and the host is
untouched."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from pathlib import Path

from phi1.sandbox import Limits, Sandbox

FAST = Limits(timeout_s=3)


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def test_passing_failing_and_broken_programs(sandbox: Sandbox) -> None:
    ok = sandbox.run(["def f(x):\n    return x + 1\n", "assert f(1) == 2\n"])
    assert ok.status == "passed" and ok.passed and ok.stages_passed == 1

    wrong = sandbox.run(["def f(x):\n    return x\n", "assert f(1) == 2\n"])
    assert wrong.status == "failed" and "AssertionError" in wrong.detail and wrong.failed_stage == 1

    syntax = sandbox.run(["def f(x:\n", "assert f(1) == 2\n"])
    assert syntax.status == "error" and "SyntaxError" in syntax.detail and syntax.failed_stage == 0

    crash = sandbox.run(["def f(x):\n    return x / 0\n", "assert f(1) == 2\n"])
    assert crash.status == "error" and "ZeroDivisionError" in crash.detail


def test_stages_are_counted_in_order(sandbox: Sandbox) -> None:
    v = sandbox.run(["x = 1", "assert x == 1", "assert x == 2", "assert True"])
    assert v.status == "failed" and v.stages_passed == 1 and v.failed_stage == 2


def test_exiting_early_with_success_is_not_a_pass(sandbox: Sandbox) -> None:
    for code in ("import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "raise SystemExit(0)\n"):
        v = sandbox.run([code, "assert False\n"], FAST)
        assert not v.passed, code
        assert v.status == "failed"
    # Printing what looks like a success report and leaving does not pass either.
    v = sandbox.run(["import os\nprint('passed')\nos.write(1, b'ok 1\\n')\nos._exit(0)\n", "assert False"])
    assert not v.passed


def test_infinite_loop_times_out(sandbox: Sandbox) -> None:
    start = time.monotonic()
    v = sandbox.run(["while True:\n    pass\n", "pass"], Limits(timeout_s=2))
    assert v.status == "timeout"
    assert time.monotonic() - start < 6


def test_busy_loop_ignoring_sigalrm_times_out(sandbox: Sandbox) -> None:
    code = (
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True:\n    pass\n"
    )
    v = sandbox.run([code, "pass"], Limits(timeout_s=2))
    assert v.status == "timeout"


def test_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    marker = f"phi1-forkbomb-{secrets.token_hex(4)}"
    code = f"import os\n# {marker}\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    start = time.monotonic()
    v = sandbox.run([code, "pass"], Limits(timeout_s=3))
    assert not v.passed and v.status in ("timeout", "killed", "error")
    assert time.monotonic() - start < 10
    time.sleep(0.2)
    assert _processes_with(marker) == []
    # The host can still start processes and the sandbox still works.
    assert sandbox.run(["x = 1", "assert x"]).passed


def test_memory_bomb_is_contained(sandbox: Sandbox) -> None:
    v = sandbox.run(["x = bytearray(8 * 1024 ** 3)\n", "pass"], Limits(timeout_s=5, memory_mb=512))
    assert not v.passed and v.status in ("error", "killed")
    v = sandbox.run(["x = []\nwhile True:\n    x.append(' ' * 10 ** 6)\n", "pass"], Limits(timeout_s=10, memory_mb=512))
    assert not v.passed and v.status in ("error", "killed")


def test_setsid_grandchild_cannot_escape(sandbox: Sandbox) -> None:
    marker = f"phi1-escape-{secrets.token_hex(4)}"
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import os, time\\nos.setsid()\\ntime.sleep(60)  # {marker}'],"
        " start_new_session=True)\n"
        "import time\ntime.sleep(0.5)\n"
    )
    v = sandbox.run([code, "pass"], Limits(timeout_s=5))
    assert v.status == "passed", v
    time.sleep(0.3)
    assert _processes_with(marker) == []
    # Also when the program is killed by the timeout while the grandchild runs.
    v = sandbox.run([code + "while True:\n    pass\n", "pass"], Limits(timeout_s=2))
    assert v.status == "timeout"
    time.sleep(0.3)
    assert _processes_with(marker) == []


def test_files_outside_cannot_be_written_or_deleted(sandbox: Sandbox, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    home_victim = Path.cwd() / f".phi1-victim-{secrets.token_hex(4)}"
    home_victim.write_text("precious")
    outside = Path("/usr") / f"phi1-pwned-{secrets.token_hex(4)}"
    try:
        code = (
            "import os, shutil\nerrors = []\n"
            f"for path in [{str(victim)!r}, {str(home_victim)!r}]:\n"
            "    try:\n        os.remove(path)\n    except OSError as e:\n        errors.append(type(e).__name__)\n"
            f"for path in [{str(outside)!r}, '/etc/phi1-pwned', {str(victim)!r}]:\n"
            "    try:\n        open(path, 'w').write('x')\n    except OSError as e:\n"
            "        errors.append(type(e).__name__)\n"
            "try:\n    shutil.rmtree('/usr/lib/python3')\nexcept OSError as e:\n    errors.append(type(e).__name__)\n"
            "print(errors)\n"
            "open('/tmp/scratch', 'w').write('private tmp works')\n"
        )
        v = sandbox.run([code, "assert open('/tmp/scratch').read() == 'private tmp works'"])
        assert v.passed, v
        assert victim.read_text() == "precious"
        assert home_victim.read_text() == "precious"
        assert not outside.exists() and not Path("/etc/phi1-pwned").exists()
        assert Path("/usr/lib/python3").exists()
    finally:
        home_victim.unlink(missing_ok=True)


def test_no_network(sandbox: Sandbox) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        v = sandbox.run([code, "pass"], FAST)
        assert v.status == "error" and ("ConnectionRefused" in v.detail or "OSError" in v.detail), v
        v = sandbox.run(["import socket\nsocket.getaddrinfo('pypi.org', 443)\n", "pass"], FAST)
        assert v.status == "error"
        assert accepted == []
    finally:
        stop.set()
        thread.join()
        server.close()


def test_secrets_in_the_environment_do_not_reach_the_code(sandbox: Sandbox, monkeypatch) -> None:
    secret = f"s3cret-{secrets.token_hex(8)}"
    monkeypatch.setenv("PHI1_TEST_SECRET", secret)
    code = (
        "import os, glob\nprint(dict(os.environ))\n"
        "for p in glob.glob('/proc/*/environ'):\n"
        "    try:\n        print(open(p, 'rb').read())\n    except OSError:\n        pass\n"
    )
    v = sandbox.run([code, "pass"])
    assert v.passed
    assert "PATH" in v.stdout  # the program did print its environment
    assert secret not in v.stdout and secret not in v.stderr


def test_killing_the_parent_leaves_the_host_alive(sandbox: Sandbox) -> None:
    host_pid = os.getpid()
    code = (
        "import os, signal\n"
        f"for pid in (os.getppid(), 1, {host_pid}, -1):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
    )
    v = sandbox.run([code, "pass"], FAST)
    # Its parent (the namespace's init, root-owned) and the host are out of reach: nothing died, and the
    # harness still reported normally.
    assert v.status == "passed", v
    os.kill(host_pid, 0)
    assert sandbox.run(["x = 1", "assert x"]).passed


def test_stdout_flood_is_capped(sandbox: Sandbox) -> None:
    v = sandbox.run(["import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", "pass"], FAST)
    assert v.status == "killed" and "output" in v.detail
    assert len(v.stdout) <= FAST.output_bytes


def test_runs_as_unprivileged_user_with_readonly_root(sandbox: Sandbox) -> None:
    code = "import os\nassert os.getuid() != 0 and os.geteuid() != 0\n"
    code += "try:\n    open('/x', 'w')\n    raise SystemExit(3)\nexcept OSError:\n    pass\n"
    assert sandbox.run([code, "pass"]).passed


def test_parallel_map_returns_every_program(sandbox: Sandbox) -> None:
    programs = [[f"x = {i}", f"assert x == {i if i % 3 else -1}"] for i in range(12)]
    verdicts = dict(sandbox.map(programs))
    assert sorted(verdicts) == list(range(12))
    assert [verdicts[i].passed for i in range(12)] == [i % 3 != 0 for i in range(12)]


def test_unsandboxed_mode_still_judges() -> None:
    with Sandbox(workers=1, mode="none") as sb:
        assert sb.run(["x = 1", "assert x == 1"]).passed
        assert sb.run(["import os\nos._exit(0)", "assert False"]).status == "failed"
        assert sb.run(["while True: pass", "pass"], Limits(timeout_s=1)).status == "timeout"


def test_missing_bubblewrap_is_refused_with_install_hint(monkeypatch) -> None:
    import pytest

    from phi1.sandbox import SandboxUnavailable

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap.*--sandbox none"):
        Sandbox(workers=1)


def test_the_harness_is_a_module_that_runs_only_as_the_sandbox_runs_it() -> None:
    """phi1/sandbox/harness.py is real Python: importing it runs nothing; given its source with `python -I
    -S -c` and a header on stdin, as the sandbox does, it runs the stages and reports each test stage with
    the nonce, and a failing stage with its kind and index."""
    import os
    import subprocess
    import sys

    import phi1.sandbox.harness as harness
    from phi1.sandbox.api import HARNESS

    assert callable(harness._phi1_harness) and Path(harness.__file__).read_text() == HARNESS
    for stages, code, report in (
        ([b"x = 2", b"assert x == 2", b"assert x > 1"], 0, b"NONCE 1\nNONCE 2\n"),
        ([b"x = 2", b"assert x == 3"], 1, b"failed 1 AssertionError: \n"),
    ):
        r, w = os.pipe()
        header = b"NONCE %d -1 ; %s\n" % (w, b" ".join(str(len(s)).encode() for s in stages))
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", HARNESS], input=header + b"".join(stages),
                              pass_fds=(w,), capture_output=True, timeout=60)  # fmt: skip
        os.close(w)
        with os.fdopen(r, "rb") as fh:
            assert (proc.returncode, fh.read()) == (code, report)
