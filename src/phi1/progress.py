"""One progress bar style for all long work: done/total, rate, elapsed and ETA."""

from __future__ import annotations

import contextlib
import sys
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
    with Progress(*columns, console=console, disable=not sys.stderr.isatty(), transient=False) as bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(n: int = 1) -> None:
            bar.advance(task, n)
            t = bar.tasks[task]
            speed = t.finished_speed or t.speed
            rate = f"{speed:.1f} {unit}/s" if speed else ""
            if extra is not None:
                rate = f"{rate} {extra()}".strip()
            bar.update(task, rate=rate)

        yield advance
