"""Isolation: the bubblewrap command line (no network, a read-only root of /usr and the interpreter, a private
/tmp, an empty environment) and the pids cgroups that bound each slot's process tree."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from phi1.sandbox.process import Python


def bwrap_command(py: Python, tmp_mb: int, harness: list[str]) -> list[str]:
    """bwrap's command line around the interpreter running `harness`."""
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
        "--perms", "1777", "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp",
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


CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


def make_pids_cgroup(name: str, max_pids: int) -> Path | None:
    for root in CGROUP_ROOTS:
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


def remove_stale_cgroups() -> None:
    """Cgroups left by phi1 processes that died without closing their sandbox."""
    for root in CGROUP_ROOTS:
        for path in root.glob("phi1-*-*-*"):
            pid = path.name.split("-")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                kill_cgroup(path, wait=True)
                with contextlib.suppress(OSError):
                    path.rmdir()


def kill_cgroup(path: Path, wait: bool = False) -> None:
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
