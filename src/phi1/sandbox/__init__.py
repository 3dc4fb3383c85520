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

Public API: what `__all__` names. `api`, `types`, `process`, `isolation`, `judge` and `harness` are the
package's own.
"""

from phi1.sandbox.api import Sandbox
from phi1.sandbox.isolation import make_pids_cgroup
from phi1.sandbox.types import INSTALL_HINT, STATUSES, Limits, Mode, SandboxUnavailable, Status, Verdict

__all__ = [
    "INSTALL_HINT",
    "STATUSES",
    "Limits",
    "Mode",
    "Sandbox",
    "SandboxUnavailable",
    "Status",
    "Verdict",
    "make_pids_cgroup",
]
