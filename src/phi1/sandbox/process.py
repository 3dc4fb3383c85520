"""One sandboxed process from the outside: the interpreter it runs, feeding its stdin and collecting its
output under limits, killing its tree, and reaping the orphans a PID namespace leaves behind."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from phi1.sandbox.types import Limits

MAX_WORKERS = 64


@dataclass(frozen=True)
class Python:
    host_exe: str
    inner_exe: str
    bind_from: str | None
    bind_to: str


def interpreter() -> Python:
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
        return Python(host_exe, host_exe, None, prefix)
    return Python(host_exe, f"/py/{rel}", prefix, "/py")


class _Limit(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def communicate(
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


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    # bwrap leads its own session (start_new_session): killing the group kills bwrap, and its PID
    # namespace takes every process inside with it (--die-with-parent covers the namespace's init).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def count_own_processes() -> int:
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
spawn_lock = threading.Lock()
spawned: set[int] = set()
SANDBOX_UIDS = range(100_000, 100_000 + 100_000 * 256 * MAX_WORKERS)


def become_subreaper() -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap_orphans() -> None:
    with spawn_lock:
        children: set[int] = set()
        with contextlib.suppress(OSError):
            for task in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError):
                    children.update(int(p) for p in Path(f"/proc/self/task/{task}/children").read_text().split())
        for pid in children - spawned:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            comm, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
            uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "Uid: 0")
            if state == "Z" and (comm == "bwrap" or int(uid_line.split()[1]) in SANDBOX_UIDS):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
