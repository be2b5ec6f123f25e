"""Progress bars for long work: rich, on stderr, and only when stderr is a terminal.

Redirected output, logs and CI therefore get no bar characters at all, and a bar goes
away when its work is done (``transient``), leaving the command's own output.

>>> with progress_bar(total_tokens, "evaluate", unit="tokens") as advance:
...     advance(512)
>>> for doc in track(documents, "reference", unit="docs"):
...     ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def _nothing(n: float = 1) -> None:
    pass


@contextlib.contextmanager
def progress_bar(total: float | None, label: str, *, unit: str = "", enabled: bool = True
                 ) -> Iterator[Callable[[float], None]]:
    """Yield ``advance(n=1)``: a transient bar over ``total`` units (a counter when the total
    is unknown) on an interactive stderr; a function that does nothing otherwise."""
    if not enabled:
        yield _nothing
        return
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
    if not console.is_terminal:
        yield _nothing
        return
    known = total is not None
    columns = [TextColumn(label), *([BarColumn()] if known else []),
               MofNCompleteColumn() if known else TextColumn("{task.completed:,.0f}"), TextColumn(unit),
               TimeRemainingColumn() if known else TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)


def track(items: Iterable[T], label: str, *, unit: str = "", enabled: bool = True) -> Iterator[T]:
    """The items of ``items``, counted on a bar as they are consumed (see :func:`progress_bar`)."""
    total = len(items) if hasattr(items, "__len__") else None
    with progress_bar(total, label, unit=unit, enabled=enabled) as advance:
        for item in items:
            yield item
            advance(1)
