"""The sandbox: a pool of slots, each running one program at a time under bubblewrap (see the package's
docstring for what isolation and judging promise)."""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from phi1.errors import Phi1Error
from phi1.sandbox.isolation import bwrap_command, kill_cgroup, make_pids_cgroup, remove_stale_cgroups
from phi1.sandbox.judge import judge
from phi1.sandbox.process import (
    MAX_WORKERS,
    become_subreaper,
    communicate,
    count_own_processes,
    interpreter,
    kill_tree,
    reap_orphans,
    spawn_lock,
    spawned,
)
from phi1.sandbox.types import INSTALL_HINT, Limits, Mode, SandboxUnavailable, Verdict

# The in-sandbox harness is a real module (linted, typed, imported by the tests); each run hands its source
# to `python -c`, as a module file would not be reachable from inside the sandbox's root.
HARNESS = (Path(__file__).parent / "harness.py").read_text(encoding="utf-8")
_instances = itertools.count()


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
        if self.workers > MAX_WORKERS:
            raise Phi1Error(f"at most {MAX_WORKERS} sandbox workers, got {self.workers}")
        self._python = interpreter()
        # Every sandbox of every phi1 process gets uids and cgroups of its own.
        instance = next(_instances) % 256
        base_uid = 100_000 + ((os.getpid() % 100_000) * 256 + instance) * MAX_WORKERS
        self._slots = queue.Queue()
        for i in range(self.workers):
            cgroup = make_pids_cgroup(f"phi1-{os.getpid()}-{instance}-{i}", self.limits.nproc)
            if cgroup is not None:
                self._cgroups.append(cgroup)
            self._slots.put(_Slot(uid=base_uid + i, cgroup=cgroup))
        if self.mode == "bwrap":
            become_subreaper()
            remove_stale_cgroups()
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
            kill_cgroup(cg, wait=True)
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
        harness = ["-I", "-S", "-X", "frozen_modules=on", "-c", HARNESS]
        if self.mode == "none":
            return [py.host_exe, *harness]
        return bwrap_command(py, self.limits.tmp_mb, harness)

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
            rlimits["RLIMIT_NPROC"] = limits.nproc + count_own_processes()
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
            with spawn_lock:  # the orphan reaper must never see our own child unregistered
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
                spawned.add(proc.pid)
        finally:
            os.close(report_w)
        try:
            out, err, report, reason = communicate(proc, payload, report_r, limits, start)
        finally:
            os.close(report_r)
            if proc.poll() is None:
                kill_tree(proc)
            proc.wait()
            with spawn_lock:
                spawned.discard(proc.pid)
            if slot.cgroup is not None:
                kill_cgroup(slot.cgroup)
            reap_orphans()
        wall = time.monotonic() - start
        return judge(nonce, len(stages) - 1, proc.returncode, out, err, report, reason, wall, limits)
