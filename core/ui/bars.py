"""Progress bars that never fight the results for the terminal.

On a terminal a bar is a live ``rich`` line above everything else, replaced by its closing line
when the work is done; redirected (CI, ``nohup``, a cluster job) it is a short plain line every
``interval_s`` seconds or quarter of the total, never a ``\\r`` frame; under ``--quiet``/``--json``
it only counts. The closing line's count is the count the task's outcome line reports (a task sets
fields such as ``sentences`` after its last batch). The rate counts from the first update, so
loading a model before the first item is not charged to the items.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator, Optional

INTERVAL_S = 10.0
"""Seconds between two plain progress lines (a quarter of the total also prints one)."""
MIN_RATE_SPAN_S = 1.0
"""A rate needs this long between the first update and now: items that came in one burst
(a recording transcribed whole, then streamed out) have no honest rate."""
MIN_GAP_S = 1.0
"""No plain line sooner than this after the previous one: a quick job shows its last alone."""
QUARTERS = 4


class Bar:
    """Counts ``n`` items towards ``total`` (None: unknown) and shows them; fields such as
    ``loss`` ride along. Closing prints the final line; a bar is a context manager."""

    def __init__(self, description: str, total: Optional[int] = None, unit: str = "",
                 initial: int = 0, on_close: Callable[["Bar"], None] = lambda bar: None):
        self.description, self.total, self.unit = description, total, unit
        self.n = self.initial = initial
        self.fields: dict[str, Any] = {}
        self.opened = time.perf_counter()
        self.first_update: Optional[float] = None
        self.counted_from = initial
        self.closed = False
        self._on_close = on_close

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.first_update is None:  # the first items also paid for loading: not counted
            self.first_update, self.counted_from = time.perf_counter(), self.n
        self.shown()

    def set(self, **fields: Any) -> None:
        """Figures shown beside the count (``sentences=...``, ``loss=...``)."""
        self.fields.update(fields)
        self.shown()

    def shown(self) -> None:
        """Hook: show the current state (a plain bar decides whether a line is due)."""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._on_close(self)

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def track(self, items: Iterable[Any]) -> Iterator[Any]:
        """Yield ``items``, counting each (the bar closes when they run out)."""
        with self:
            for item in items:
                yield item
                self.update(1)

    # ----------------------------------------------------------------------- text

    def elapsed(self) -> float:
        return time.perf_counter() - self.opened

    def rate(self) -> Optional[float]:
        """Items per second after the first update (None before a second one)."""
        if self.first_update is None or self.n <= self.counted_from:
            return None
        seconds = time.perf_counter() - self.first_update
        return (self.n - self.counted_from) / seconds if seconds >= MIN_RATE_SPAN_S else None

    def count_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.total is None:
            return f"{self.n:,}{unit}"
        return f"{self.n:,}/{self.total:,}{unit} ({100 * self.n / max(self.total, 1):.0f}%)"

    def fields_text(self) -> str:
        return "".join(f", {name} {_figure(value)}" for name, value in self.fields.items())

    def line(self) -> str:
        """The state as one plain line."""
        return f"{self.description}: {self.count_text()}{self.fields_text()}, {self.elapsed():.1f} s"

    def final_line(self) -> str:
        """The closing line: the count the outcome line will report, time, and the rate."""
        unit = f" {self.unit}" if self.unit else ""
        rate = self.rate()
        speed = f", {rate:,.1f} {self.unit or 'items'}/s" if rate is not None else ""
        return (f"{self.description}: {self.n:,}{unit}{self.fields_text()} in "
                f"{self.elapsed():.1f} s{speed}")


class PlainBar(Bar):
    """A redirected bar: one line now and then, on a plain stream."""

    def __init__(self, write: Callable[[str], None], *args: Any, interval_s: float = INTERVAL_S,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._write, self._interval = write, interval_s
        self._last_line, self._last_quarter = self.opened, self._quarter()

    def _quarter(self) -> int:
        return QUARTERS * self.n // self.total if self.total else 0

    def shown(self) -> None:
        now, quarter = time.perf_counter(), self._quarter()
        gap = now - self._last_line
        if self.n == self.total:  # the closing line comes next
            return
        if gap >= self._interval or gap >= MIN_GAP_S and quarter > self._last_quarter:
            self._write(self.line())
            self._last_line, self._last_quarter = now, quarter

    def close(self) -> None:
        if not self.closed:
            self._write(self.final_line())
        super().close()


class LiveBar(Bar):
    """A bar of a shared ``rich`` Progress (the terminal's live area)."""

    def __init__(self, progress: Any, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._progress = progress
        self._task = progress.add_task(self.description, total=self.total, completed=self.n,
                                       extra="")

    def shown(self) -> None:
        self._progress.update(self._task, completed=self.n, extra=self._extra())

    def _extra(self) -> str:
        rate = self.rate()
        speed = f"{rate:,.1f} {self.unit or 'items'}/s" if rate is not None else ""
        return ", ".join(filter(None, [speed, self.fields_text().lstrip(", ")]))


def live_progress(console: Any) -> Any:
    """The ``rich`` Progress the live bars share: description, bar, count, then the figures."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
                    MofNCompleteColumn(), TextColumn("[dim]{task.fields[extra]}"),
                    console=console, transient=True, redirect_stdout=False,
                    redirect_stderr=False)


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
