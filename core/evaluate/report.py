"""An evaluation's result: systems (rows) × metrics (columns), each cell a mean over n items.

Every evaluation mode builds one ``Report``, so the table printed and the JSON written look the
same whatever was measured. A cell with no items (a metric that does not apply to a system, e.g.
round-trip ℓ2 of a baseline without a decoder) shows "-" and is ``null`` in JSON.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Metric:
    """A column: its key in JSON, its header, and which direction is better."""

    key: str
    label: str
    higher_is_better: bool
    description: str

    @property
    def header(self) -> str:
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"


@dataclass
class Cell:
    """The mean of a metric over ``n`` items (examples, or predicted positions)."""

    mean: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> "Cell":
        total, n = math.fsum(values := list(values)), len(values)
        return cls(total / n if n else None, n)


@dataclass
class Report:
    """Rows in insertion order; ``settings`` records what a reader needs to reproduce them."""

    title: str
    metrics: list[Metric]
    rows: dict[str, dict[str, Cell]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def add(self, system: str, metric: str, values: Iterable[float]) -> Cell:
        if metric not in {m.key for m in self.metrics}:
            raise KeyError(f"unknown metric {metric!r}")
        cell = Cell.of(values)
        self.rows.setdefault(system, {})[metric] = cell
        return cell

    def cell(self, system: str, metric: str) -> Cell:
        return self.rows.get(system, {}).get(metric, Cell(None, 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "metrics": [{"key": m.key, "label": m.label, "higher_is_better": m.higher_is_better,
                         "description": m.description} for m in self.metrics],
            "rows": [{"system": system,
                      "metrics": {m.key: {"mean": self.cell(system, m.key).mean,
                                          "n": self.cell(system, m.key).n} for m in self.metrics}}
                     for system in self.rows],
            "settings": self.settings,
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def table(self) -> Any:
        """A ``rich`` table: one column per metric; n beside the means (per cell if it varies)."""
        table = Table(title=self.title)
        table.add_column("system")
        for metric in self.metrics:
            table.add_column(metric.header, justify="right")
        table.add_column("n", justify="right")
        for system in self.rows:
            cells = [self.cell(system, m.key) for m in self.metrics]
            counts = {c.n for c in cells if c.mean is not None}
            uniform = len(counts) <= 1
            shown = [_format(c, with_n=not uniform) for c in cells]
            table.add_row(system, *shown, str(counts.pop()) if uniform and counts else "-")
        return table

    def print(self, console: Any = None) -> None:
        (console or Console()).print(self.table())


def _format(cell: Cell, with_n: bool) -> str:
    if cell.mean is None:
        return "-"
    text = f"{cell.mean:.4f}"
    return f"{text} (n={cell.n})" if with_n else text
