"""One progress bar style for all long work: done/total, rate, elapsed and ETA."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(
    total: int, description: str, unit: str = "items", extra: Callable[[], str] | None = None
) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`. `extra` returns text shown after the rate (e.g. token counts)."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    enabled = sys.stderr.isatty()
    with Progress(*columns, console=console, disable=not enabled, transient=False) as bar:
        task = bar.add_task(description, total=total, rate="")
        last = 0.0

        def advance(n: int = 1) -> None:
            nonlocal last
            bar.advance(task, n)
            now = time.monotonic()
            # The rate text is refreshed a few times a second: computing it walks rich's samples, and
            # advance() runs once per item on hot paths (thousands of teacher responses a second).
            if not enabled or now - last < 0.25:
                return
            last = now
            t = bar.tasks[task]
            speed = t.finished_speed or t.speed
            rate = f"{speed:.1f} {unit}/s" if speed else ""
            if extra is not None:
                rate = f"{rate} {extra()}".strip()
            bar.update(task, rate=rate)

        yield advance
