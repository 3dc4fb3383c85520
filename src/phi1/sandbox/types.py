"""What a sandboxed run is given and what it gives back: limits, statuses, the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from phi1.errors import Phi1Error

Status = Literal["passed", "failed", "error", "timeout", "killed"]
Mode = Literal["bwrap", "none"]

STATUSES: tuple[Status, ...] = ("passed", "failed", "error", "timeout", "killed")


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
