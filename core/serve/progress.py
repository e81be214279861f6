"""Where a running request stands: its stage, how far along, and a rough time left.

Stages come from two places: the summarize task's stage callback (generating, decoding), and
the progress bars a speech encoder draws while it segments and recognises. Core cannot ask a
plugin for more than its segments, so those bars are read from the terminal the request runs
under (``lcm.ui``), which every bar of the run opens on.
Time left adds the current stage's rest (from its bar, else from past requests) to what the
later stages took on average before; the first request has no history and says so.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from lcm.ui import Terminal

STAGES = ("segmenting", "recognising", "encoding", "generating", "decoding")
BAR_STAGES = {"scan": "segmenting", "whisper": "recognising", "encode": "encoding",
              "sonar_speech": "encoding", "sonar_text": "encoding"}
"""A live progress bar's first word of description -> the stage it shows."""


@dataclass(frozen=True)
class Status:
    """A snapshot for the page."""

    stage: str
    detail: str
    """The live bar's count, e.g. ``7/12 utt``; empty without a bar."""
    fraction: Optional[float]
    """How far the whole request is, where an estimate exists."""
    elapsed_s: float
    left_s: Optional[float]


class StageHistory:
    """Mean seconds each stage took in earlier requests (shared by all requests of a server)."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._sums[stage] = self._sums.get(stage, 0.0) + seconds
            self._counts[stage] = self._counts.get(stage, 0) + 1

    def mean(self, stage: str) -> Optional[float]:
        with self._lock:
            count = self._counts.get(stage)
            return self._sums[stage] / count if count else None


class Tracker:
    """One request's progress; ``stage`` is called by the worker, ``status`` by the page."""

    def __init__(self, history: StageHistory, first_stage: str = "segmenting",
                 terminal: Optional[Terminal] = None):
        """``terminal``: the one the request's work runs under (``lcm.ui.using``), whose open
        bars tell how far a stage is; None: stages only."""
        self.history = history
        self.terminal = terminal
        self.started = time.monotonic()
        self._stage, self._stage_started = first_stage, self.started
        self._lock = threading.Lock()
        self.seen: Optional[float] = None
        """When the page last asked for the status (None: never): a request nobody watches
        any more is abandoned (``lcm.serve.requests``)."""
        self.cancelled = False

    def stage(self, name: str) -> None:
        """The request moved on to ``name``; the stage it leaves is recorded for later ETAs.
        Stages only move forward (a bar seen late never takes the request back)."""
        now = time.monotonic()
        with self._lock:
            if _order(name) <= _order(self._stage):
                return
            self.history.add(self._stage, now - self._stage_started)
            self._stage, self._stage_started = name, now

    def finish(self) -> None:
        self.stage("done")

    def cancel(self) -> None:
        """Stop the request's work at its next progress step."""
        self.cancelled = True

    def status(self) -> Status:
        """Now: the live bar moves the stage on (a recognition bar closing means encoding)."""
        self.seen = time.monotonic()
        bar = None if self.terminal is None else _live_bar(self.terminal)
        if bar is not None:
            self.stage(BAR_STAGES.get(bar["desc"].split(" ")[0], self._stage))
        elif self._stage == "recognising":
            self.stage("encoding")
        now = time.monotonic()
        with self._lock:
            stage, since = self._stage, self._stage_started
        detail, stage_left = "", None
        if bar is not None:
            detail = f"{bar['n']}/{bar['total']} {bar['unit']}".strip()
            if bar["n"]:
                stage_left = bar["elapsed"] * (bar["total"] - bar["n"]) / bar["n"]
        if stage_left is None:
            mean = self.history.mean(stage)
            stage_left = None if mean is None else max(mean - (now - since), 0.0)
        later = [self.history.mean(s) for s in STAGES[_order(stage) + 1:]]
        left = None if stage_left is None or None in later else stage_left + sum(later)
        elapsed = now - self.started
        fraction = None if left is None else elapsed / max(elapsed + left, 1e-9)
        return Status(stage, detail, fraction, elapsed, left)


def _order(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def _live_bar(terminal: Terminal) -> Optional[dict[str, Any]]:
    """The newest open bar with a total on ``terminal``, as a dict."""
    bars = [b for b in terminal.open_bars() if b.total]
    if not bars:
        return None
    bar = max(bars, key=lambda b: b.opened)
    return {"desc": bar.description, "n": int(bar.n), "total": int(bar.total),
            "unit": bar.unit.strip(), "elapsed": time.perf_counter() - bar.opened}
