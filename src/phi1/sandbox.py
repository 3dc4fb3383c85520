"""Running untrusted Python (model completions, teacher-written exercises) and judging it.

Every program runs under bubblewrap: no network, a read-only root holding only /usr and the interpreter,
a private size-capped /tmp, an empty environment, a non-root uid, memory / CPU / process limits, and a
PID namespace whose teardown kills every process the program started. A wall-clock timeout kills the
whole tree.

A program is a list of *stages* of Python source run one after another in one namespace: stage 0 is the
code under test, the later stages are its tests. The harness reports each completed test stage on a
separate pipe with a random nonce that only the harness was given, so exiting early with status 0
(``sys.exit(0)``, ``os._exit(0)``) or printing "passed" does not count as passing. Code that goes out of
its way to dig the nonce out of the interpreter's memory could still forge it; the sandbox contains what
such code can do, the verdict is about honest mistakes and naive cheating.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from phi1.errors import Phi1Error

Status = Literal["passed", "failed", "error", "timeout", "killed"]
Mode = Literal["bwrap", "none"]

STATUSES: tuple[Status, ...] = ("passed", "failed", "error", "timeout", "killed")
_MAX_WORKERS = 64
_instances = itertools.count()

# Runs inside the sandbox as `python -I -S -c HARNESS`, as root when the host is root. Reads from stdin one
# header line "nonce report_fd uid rlimit=value... ; stage byte lengths" and then the stages' bytes; sets
# the limits, drops to `uid` (bwrap already set no_new_privs and mounts everything nosuid, so no
# capability can come back), and only then runs the stages. It imports nothing but `resource`: every
# module costs start-up time on each of thousands of runs.
_HARNESS = r"""
import os, sys
def _phi1_harness():
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
        stages.append(body[pos:pos + int(n)])
        pos += int(n)
    del raw, body, header
    report = os.fdopen(report_fd, "wb", buffering=0)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    for index, source in enumerate(stages):
        try:
            exec(compile(source, "<stage%d>" % index, "exec"), namespace)
        except BaseException as exc:
            kind = "failed" if isinstance(exc, (AssertionError, SystemExit)) else "error"
            text = ("%s %d %s: %s" % (kind, index, type(exc).__name__, exc))[:400]
            try:
                report.write(text.replace("\n", " ").encode("utf-8", "replace") + b"\n")
            finally:
                _phi1_exit(1)
        if index:
            report.write(nonce + b" %d\n" % index)
    report.close()
    _phi1_exit(0)
def _phi1_exit(code):
    # os._exit skips the flush of buffered output; the program's output is still wanted.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code)
_phi1_harness()
"""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed program."""

    timeout_s: float = 10.0
    memory_mb: int = 2048  # address space (RLIMIT_AS)
    nproc: int = 64  # processes and threads of the program's tree
    output_bytes: int = 1 << 20  # stdout + stderr; the program is killed past it
    tmp_mb: int = 64  # private writable /tmp
    file_mb: int = 64  # largest file the program may write

    @property
    def cpu_s(self) -> int:
        return int(self.timeout_s) + 1


@dataclass(frozen=True)
class Verdict:
    status: Status
    detail: str
    stages_passed: int  # stages after stage 0 that ran to their end
    wall_s: float
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    failed_stage: int | None = None  # the stage that raised, when one did

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class SandboxUnavailable(Phi1Error):
    """bubblewrap is missing or does not work on this machine."""


INSTALL_HINT = (
    "bubblewrap is not installed: install it with `sudo apt-get install bubblewrap` (Debian/Ubuntu) or "
    "`sudo dnf install bubblewrap`, or pass --sandbox none to run untrusted code WITHOUT isolation (unsafe)"
)


@dataclass
class _Slot:
    uid: int
    cgroup: Path | None


@dataclass
class Sandbox:
    """A pool of sandbox slots: each concurrent run gets its own uid and pids cgroup.

    RLIMIT_NPROC counts every process of a uid, so concurrent programs must not share one; a pids cgroup
    (when this process may create one) bounds the tree even if a uid were shared.
    """

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    mode: Mode = "bwrap"
    limits: Limits = field(default_factory=Limits)
    _slots: queue.Queue[_Slot] = field(init=False, repr=False)
    _cgroups: list[Path] = field(init=False, repr=False, default_factory=list)

    @staticmethod
    def default_workers() -> int:
        return os.cpu_count() or 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise Phi1Error(f"workers must be at least 1, got {self.workers}")
        if self.mode == "bwrap" and shutil.which("bwrap") is None:
            raise SandboxUnavailable(INSTALL_HINT)
        if self.mode not in ("bwrap", "none"):
            raise Phi1Error(f"unknown sandbox mode {self.mode!r}: use 'bwrap' or 'none'")
        if self.workers > _MAX_WORKERS:
            raise Phi1Error(f"at most {_MAX_WORKERS} sandbox workers, got {self.workers}")
        self._python = _interpreter()
        # Every sandbox of every phi1 process gets uids and cgroups of its own.
        instance = next(_instances) % 256
        base_uid = 100_000 + ((os.getpid() % 100_000) * 256 + instance) * _MAX_WORKERS
        self._slots = queue.Queue()
        for i in range(self.workers):
            cgroup = make_pids_cgroup(f"phi1-{os.getpid()}-{instance}-{i}", self.limits.nproc)
            if cgroup is not None:
                self._cgroups.append(cgroup)
            self._slots.put(_Slot(uid=base_uid + i, cgroup=cgroup))
        if self.mode == "bwrap":
            _become_subreaper()
            _remove_stale_cgroups()
            self._check_works()

    # -- public -------------------------------------------------------------------------------------

    def run(self, stages: Sequence[str], limits: Limits | None = None) -> Verdict:
        """Run one program (stage 0: code under test, stages 1..: tests) and judge it."""
        slot = self._slots.get()
        try:
            return self._run_in_slot(slot, list(stages), limits or self.limits)
        finally:
            self._slots.put(slot)

    def map(
        self,
        programs: Iterable[Sequence[str]],
        limits: Limits | Callable[[int], Limits] | None = None,
    ) -> Iterator[tuple[int, Verdict]]:
        """Run many programs on `workers` threads; yields (index, verdict) as they finish."""
        programs = list(programs)

        def job(i: int) -> tuple[int, Verdict]:
            lim = limits(i) if callable(limits) else limits
            return i, self.run(programs[i], lim)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(job, i) for i in range(len(programs))]
            for fut in as_completed(futures):
                yield fut.result()

    def close(self) -> None:
        for cg in self._cgroups:
            _kill_cgroup(cg, wait=True)
            with contextlib.suppress(OSError):
                cg.rmdir()
        self._cgroups.clear()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------------

    def _check_works(self) -> None:
        verdict = self.run(["x = 1", "assert x == 1"], Limits(timeout_s=20))
        if not verdict.passed:
            raise SandboxUnavailable(
                "bubblewrap is installed but a trivial program failed in it "
                f"({verdict.status}: {verdict.detail or verdict.stderr.strip()[-300:]}); "
                "pass --sandbox none to run without isolation (unsafe)"
            )

    def _command(self) -> list[str]:
        py = self._python
        harness = ["-I", "-S", "-X", "frozen_modules=on", "-c", _HARNESS]
        if self.mode == "none":
            return [py.host_exe, *harness]
        cmd = [
            "bwrap",
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent", "--new-session", "--clearenv",
            "--tmpfs", "/",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin",
            "--proc", "/proc",
            "--dev", "/dev",
            "--perms", "1777", "--size", str(self.limits.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp",
        ]  # fmt: skip
        if py.bind_from:
            cmd += ["--ro-bind", py.bind_from, py.bind_to, "--setenv", "LD_LIBRARY_PATH", f"{py.bind_to}/lib"]
        cmd += [
            "--remount-ro", "/",
            "--chdir", "/tmp",
            "--setenv", "PATH", "/usr/bin:/bin",
            "--setenv", "HOME", "/tmp",
            "--setenv", "PYTHONHASHSEED", "0",
        ]  # fmt: skip
        if os.geteuid() != 0:
            # Without root, a user namespace maps the program to nobody; the harness cannot switch uid.
            cmd += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
        return [*cmd, "--", py.inner_exe, *harness]

    def _header(self, slot: _Slot, limits: Limits, nonce: bytes, report_fd: int) -> bytes:
        """The harness's settings: which uid to become and which limits to set before any stage runs."""
        root = os.geteuid() == 0
        uid = slot.uid if root and self.mode == "bwrap" else -1
        rlimits = {
            "RLIMIT_AS": limits.memory_mb * 1024 * 1024,
            "RLIMIT_CPU": limits.cpu_s,
            "RLIMIT_FSIZE": limits.file_mb * 1024 * 1024,
            "RLIMIT_NOFILE": 256,
            "RLIMIT_CORE": 0,
        }
        if uid >= 0:
            rlimits["RLIMIT_NPROC"] = limits.nproc  # counted per uid: each slot has its own
        elif self.mode == "bwrap":
            # In a user namespace RLIMIT_NPROC counts all of the user's own processes on the host.
            rlimits["RLIMIT_NPROC"] = limits.nproc + _count_own_processes()
        items = " ".join(f"{k}={v}" for k, v in rlimits.items())
        return f"{nonce.decode()} {report_fd} {uid} {items}".encode()

    def _run_in_slot(self, slot: _Slot, stages: list[str], limits: Limits) -> Verdict:
        nonce = secrets.token_hex(16).encode()
        cmd = self._command()
        if slot.cgroup is not None:
            # Join the cgroup before bwrap starts so that everything below it is counted.
            cmd = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(slot.cgroup / "cgroup.procs"), *cmd]
        report_r, report_w = os.pipe()
        sources = [stage.encode("utf-8", "surrogatepass") for stage in stages]
        lengths = " ".join(str(len(src)) for src in sources).encode()
        payload = self._header(slot, limits, nonce, report_w) + b" ; " + lengths + b"\n" + b"".join(sources)
        start = time.monotonic()
        try:
            with _spawn_lock:  # the orphan reaper must never see our own child unregistered
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    pass_fds=(report_w,),
                    env={} if self.mode == "bwrap" else {"PATH": "/usr/bin:/bin"},
                    start_new_session=True,
                    close_fds=True,
                )
                _spawned.add(proc.pid)
        finally:
            os.close(report_w)
        try:
            out, err, report, reason = _communicate(proc, payload, report_r, limits, start)
        finally:
            os.close(report_r)
            if proc.poll() is None:
                _kill_tree(proc)
            proc.wait()
            with _spawn_lock:
                _spawned.discard(proc.pid)
            if slot.cgroup is not None:
                _kill_cgroup(slot.cgroup)
            _reap_orphans()
        wall = time.monotonic() - start
        return _judge(nonce, len(stages) - 1, proc.returncode, out, err, report, reason, wall, limits)


# -- helpers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Python:
    host_exe: str
    inner_exe: str
    bind_from: str | None
    bind_to: str


def _interpreter() -> _Python:
    """The real interpreter behind this (possibly virtual) environment, and where it appears inside.

    The sandbox runs the base interpreter with -I -S: the standard library only, no site-packages.
    Its prefix is bound read-only at /py unless it already lives under /usr, because a prefix under a
    private home (pyenv's /root/.pyenv) cannot be reached by the sandbox's unprivileged uid.
    """
    prefix = os.path.realpath(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.join(prefix, "bin", version), os.path.join(prefix, "bin", "python3")]
    host_exe = next((c for c in candidates if os.path.exists(c)), os.path.realpath(sys.executable))
    rel = os.path.relpath(host_exe, prefix)
    if prefix == "/usr" or prefix.startswith("/usr/"):
        return _Python(host_exe, host_exe, None, prefix)
    return _Python(host_exe, f"/py/{rel}", prefix, "/py")


class _Limit(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _communicate(
    proc: subprocess.Popen[bytes], payload: bytes, report_fd: int, limits: Limits, start: float
) -> tuple[bytes, bytes, bytes, str | None]:
    """Feed stdin, collect stdout/stderr (capped) and the report pipe until exit or a limit.

    The end of the program is watched through a pidfd in the same select() as the pipes: waiting on
    pipe EOF and then polling for the exit would add milliseconds to each of thousands of runs.
    """
    assert proc.stdin and proc.stdout and proc.stderr
    out_fd, err_fd, stdin_fd = proc.stdout.fileno(), proc.stderr.fileno(), proc.stdin.fileno()
    buffers: dict[int, bytearray] = {out_fd: bytearray(), err_fd: bytearray(), report_fd: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in buffers:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_WRITE)
    pidfd = _pidfd_open(proc.pid)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ)
    view = memoryview(payload)
    reading = set(buffers)
    exited = False
    reason: str | None = None
    deadline = start + limits.timeout_s

    def read(fd: int) -> bool:
        """Read what is there; False at EOF or when nothing is left."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            sel.unregister(fd)
            reading.discard(fd)
            return False
        buffers[fd] += chunk
        if fd == report_fd:
            if len(buffers[fd]) > 1 << 16:
                raise _Limit("report")
        elif len(buffers[out_fd]) + len(buffers[err_fd]) > limits.output_bytes:
            raise _Limit("output")
        return True

    try:
        while reading and not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = "timeout"
                break
            for key, _ in sel.select(timeout=min(remaining, 1.0)):
                if key.fd == pidfd:
                    exited = True
                elif key.fd == stdin_fd:
                    try:
                        view = view[os.write(stdin_fd, view[:65536]) :]
                    except BlockingIOError:
                        pass
                    except BrokenPipeError:
                        view = view[:0]
                    if not view:
                        sel.unregister(stdin_fd)
                        proc.stdin.close()
                elif key.fd in reading:
                    read(key.fd)
        if exited:
            # Take what the program left in the pipes; never wait for a writer that outlives it.
            for fd in list(reading):
                while read(fd):
                    pass
    except _Limit as limit:
        reason = limit.reason
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        if not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()
    if reason is None and not exited:
        # Every pipe closed (no pidfd here): the program has exited or is about to.
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            reason = "timeout"
    return bytes(buffers[out_fd]), bytes(buffers[err_fd]), bytes(buffers[report_fd]), reason


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _judge(
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


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    # bwrap leads its own session (start_new_session): killing the group kills bwrap, and its PID
    # namespace takes every process inside with it (--die-with-parent covers the namespace's init).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


_CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


def make_pids_cgroup(name: str, max_pids: int) -> Path | None:
    for root in _CGROUP_ROOTS:
        if not (root / "cgroup.procs").exists() or not os.access(root, os.W_OK):
            continue
        if root == Path("/sys/fs/cgroup"):
            controllers = root / "cgroup.subtree_control"
            if not controllers.exists() or "pids" not in controllers.read_text():
                continue
        path = root / name
        try:
            path.mkdir(exist_ok=True)
            (path / "pids.max").write_text(str(max_pids))
            return path
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
    return None


def _remove_stale_cgroups() -> None:
    """Cgroups left by phi1 processes that died without closing their sandbox."""
    for root in _CGROUP_ROOTS:
        for path in root.glob("phi1-*-*-*"):
            pid = path.name.split("-")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _kill_cgroup(path, wait=True)
                with contextlib.suppress(OSError):
                    path.rmdir()


def _kill_cgroup(path: Path, wait: bool = False) -> None:
    """SIGKILL whatever is left in a slot's cgroup. After a run, what is left is a PID namespace being
    torn down: killed already, it cannot act, so there is no need to wait (which costs ~10 ms a run) unless
    the cgroup itself is to be removed."""
    for attempt in range(200 if wait else 1):
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if wait:
            time.sleep(0.001 if attempt < 20 else 0.01)


def _count_own_processes() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += 1
    return count


# bwrap's outer process can exit before the PID namespace's init does, and processes killed with the
# namespace outlive their parents for a moment: such orphans go to the nearest "child subreaper". A
# container's PID 1 often reaps nothing, so their zombies would pile up (and count against the pids
# cgroup); as a subreaper, this process reaps them itself. Only zombies that are the sandbox's own (bwrap,
# or a sandbox uid) and not children that subprocess is waiting for are reaped.
_spawn_lock = threading.Lock()
_spawned: set[int] = set()
_SANDBOX_UIDS = range(100_000, 100_000 + 100_000 * 256 * _MAX_WORKERS)


def _become_subreaper() -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _reap_orphans() -> None:
    with _spawn_lock:
        children: set[int] = set()
        with contextlib.suppress(OSError):
            for task in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError):
                    children.update(int(p) for p in Path(f"/proc/self/task/{task}/children").read_text().split())
        for pid in children - _spawned:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            comm, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
            uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "Uid: 0")
            if state == "Z" and (comm == "bwrap" or int(uid_line.split()[1]) in _SANDBOX_UIDS):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
