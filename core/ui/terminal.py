"""The run's terminal: one output layer every task writes through.

Results go to stdout, progress and notes to stderr. While a bar is open, results wait and are
printed when the last bar closes, so a bar never tangles with them. Closed bars leave their
closing line (count, time, rate), on a terminal as in a log. A note (an overflow step
skipped, an input cut) is said once in lcm's words and counted in the outcome line. Three modes:
``text`` (people), ``quiet`` (scripts: the outcome line alone) and ``json`` (machines: one JSON
object per task on stdout, nothing else there).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
from collections import Counter
from typing import Any, Callable, Iterator, Optional

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from lcm.ui.bars import Bar, LiveBar, PlainBar, live_progress
from lcm.json_output import dumps

MODES = ("text", "quiet", "json")
SHOW_ALL_UP_TO = 40
SHOWN_OF_MANY = 5
"""Up to 40 results (documents, continuations) are all printed; of more, the first 5 and where
all of them are written."""


class Terminal:
    """What a run prints, in one of ``MODES``; ``out``/``err``: rich consoles (the screenshot
    passes a recording one); ``live``: bars as a live area (default: when ``err`` is a
    terminal; a live area on a file shows only the closing lines)."""

    def __init__(self, mode: str = "text", out: Any = None, err: Any = None,
                 interval_s: Optional[float] = None, live: Optional[bool] = None):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        self.mode = mode
        self.out = out or Console(highlight=False, soft_wrap=True)
        self.err = err or Console(stderr=True, highlight=False, soft_wrap=True)
        self.interval_s = interval_s
        self.live = self.err.is_terminal if live is None else live
        self.notes: Counter[str] = Counter()
        self._held: list[tuple[Any, ...]] = []
        self._open: list[Bar] = []
        self._finished: list[Bar] = []
        self._live: Any = None

    @property
    def shows_results(self) -> bool:
        return self.mode == "text"

    # ----------------------------------------------------------------------- progress

    def progress(self, description: str, total: Optional[int] = None, unit: str = "",
                 initial: int = 0) -> Bar:
        """A bar for ``description``; close it (or use ``with``) when the work is done."""
        args = (description, total, unit, initial)
        if self.mode != "text":
            bar = Bar(*args, on_close=self._closed)
        elif self.live:
            if self._live is None:
                self._live = live_progress(self.err)
                self._live.start()
            bar = LiveBar(self._live, *args, on_close=self._closed)
        else:
            extra = {} if self.interval_s is None else {"interval_s": self.interval_s}
            bar = PlainBar(self.status, *args, on_close=self._closed, **extra)
        self._open.append(bar)
        return bar

    def open_bars(self) -> list[Bar]:
        """The bars open now, oldest first (a copy: another thread may read it, as the web
        page's progress does while a request runs)."""
        return list(self._open)

    def _closed(self, bar: Bar) -> None:
        self._open.remove(bar)
        if self._live is not None:
            self._finished.append(bar)
        if self._open:
            return
        if self._live is not None:  # the live area goes; what stays is what a log would keep
            self._live.stop()
            self._live = None
            for finished in sorted(self._finished, key=lambda b: b.opened):
                self.status(finished.final_line())
            self._finished = []
        held, self._held = self._held, []
        for renderables in held:
            self.out.print(*renderables)

    def status(self, line: str) -> None:
        """A line about the run's progress on stderr (text mode only; above any live bar)."""
        if self.mode == "text":
            self.err.print(line, markup=False, highlight=False)

    # ----------------------------------------------------------------------- results

    def print(self, *renderables: Any) -> None:
        """A result for people (text mode only); held while a bar is open."""
        if not self.shows_results:
            return
        if self._open:
            self._held.append(renderables)
        else:
            self.out.print(*renderables)

    def show_some(self, items: list[Any], show: Callable[[Any], None], noun: str,
                  output: Optional[str]) -> None:
        """``show`` each of a few ``items``; of many, the first ones, then where the rest is."""
        shown = items if len(items) <= SHOW_ALL_UP_TO else items[:SHOWN_OF_MANY]
        for item in shown:
            show(item)
        if len(shown) < len(items):
            where = f"all {len(items)} are in {output}" if output else "set output= to write them all"
            self.print(f"[dim]… {len(items) - len(shown)} more {noun} not shown; "
                       f"{escape(where)}[/dim]")

    def rule(self, title: str = "") -> None:
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from rich.rule import Rule

        self.print(Rule(title))

    def note(self, message: str, key: Optional[str] = None) -> None:
        """Something lcm wants said about the run: shown once per ``key`` (default: the message)
        on stderr, counted by ``key`` for the outcome line."""
        key = key or message
        self.notes[key] += 1
        if self.notes[key] == 1 and self.mode != "json":
            self.err.print(f"[yellow]note:[/yellow] {escape(message)}", highlight=False)

    def outcome(self, line: str, data: Optional[dict[str, Any]] = None) -> None:
        """The task's last word: ``line`` for people and scripts, ``data`` as JSON for machines;
        the notes are counted in both."""
        if self.mode == "json":
            body = dumps(data or {}, self.note, default=str, ensure_ascii=False)  # may add a note
            record = {**json.loads(body), "notes": dict(self.notes)}
            self.out.file.write(dumps(record, self.note, ensure_ascii=False) + "\n")
            self.out.file.flush()
            self.notes.clear()
            return
        counted = "; ".join(f"{n} × {key}" for key, n in self.notes.items())
        text = Text(line + (f" (notes: {counted})" if counted else ""))  # no markup in paths
        if self._open:
            self._held.append((text,))
        else:
            self.out.print(text)
        self.notes.clear()


_CURRENT: contextvars.ContextVar[Optional[Terminal]] = contextvars.ContextVar("lcm_terminal",
                                                                               default=None)


def current() -> Terminal:
    """The terminal of the running command (code without a RunContext, such as an encoder's
    bar, reaches it here); a plain text one outside a command."""
    terminal = _CURRENT.get()
    if terminal is None:
        terminal = Terminal()
        _CURRENT.set(terminal)
    return terminal


@contextlib.contextmanager
def using(terminal: Terminal) -> Iterator[Terminal]:
    """Make ``terminal`` the current one for the duration of a command."""
    token = _CURRENT.set(terminal)
    try:
        yield terminal
    finally:
        _CURRENT.reset(token)


def progress(description: str, total: Optional[int] = None, unit: str = "",
             initial: int = 0, shown: bool = True) -> Bar:
    """A bar on the current terminal (see ``Terminal.progress``); ``shown=False``: one that
    only counts (a caller's ``progress: false``)."""
    if not shown:
        return Bar(description, total, unit, initial)
    return current().progress(description, total, unit, initial)
