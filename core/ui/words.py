"""Figures as a run's lines write them: counts by reason, and times of a recording."""
from __future__ import annotations

from collections import Counter


def format_counts(counter: Counter) -> str:
    """``"2 empty, 1 too long"``, or ``"none"``."""
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counter.items())) or "none"


def format_time(seconds: float) -> str:
    """``mm:ss.s``, or ``h:mm:ss.s`` from an hour on."""
    minutes, rest = divmod(float(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes:02d}:{rest:04.1f}"
