"""`phi1 view`: browse a run directory in the browser, every record and result, read in place.

`tables` reads the record tables through DuckDB (pages, filters and search pushed into the scan), `run` reads
the manifests and result files, `evidence` shows why a sample looks like a benchmark problem, and `app` renders
the pages (escaped; no scripts). `serve` runs the app on the loopback interface.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from phi1.errors import Phi1Error


def check_run_dir(path: Path) -> None:
    if not path.is_dir():
        raise Phi1Error(f"{path}: no such run directory")
    if not any(path.glob("*/manifest.json")) and not (path / "config.yaml").exists():
        raise Phi1Error(f"{path}: not a run directory (no stage manifest and no config.yaml in it)")


def serve(run_dirs: list[Path], host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True) -> None:
    """Serve the viewer until interrupted; open the user's browser on it once it listens."""
    import uvicorn

    from phi1.view.app import make_app

    for path in run_dirs:
        check_run_dir(path)
    app = make_app(run_dirs)
    url = f"http://{host}:{port}/"
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    if open_browser:

        def opener() -> None:
            while not server.started and not server.should_exit:
                threading.Event().wait(0.05)
            if server.started:
                webbrowser.open(url)

        threading.Thread(target=opener, daemon=True).start()
    print(f"phi1 view: {url} (Ctrl-C stops it)", flush=True)
    server.run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Served:
    url: str  # http://127.0.0.1:PORT
    port: int
    pid: int


@contextmanager
def running(run_dirs: list[Path], port: int | None = None, timeout_s: float = 60.0) -> Iterator[Served]:
    """`phi1 view` in a process of its own on the loopback interface, for as long as the block runs (tests,
    benchmarks, screenshots), once it accepts connections."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "phi1.cli", "view", *map(str, run_dirs), "--port", str(port), "--no-open"]
    server = subprocess.Popen(cmd)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise Phi1Error(f"phi1 view did not start on port {port}") from None
                time.sleep(0.1)
        yield Served(f"http://127.0.0.1:{port}", port, server.pid)
    finally:
        server.terminate()
        server.wait(10)
