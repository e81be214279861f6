"""Held-out quality against sentences seen, recorded at every checkpoint of a decoder run.

The loss curve says how well the decoder fits its training sentences; this curve says how well
it writes sentences it never saw (greedy decoding of clean held-out vectors), which is what a
user needs to decide how many more hours a run is worth. One CSV row per checkpoint, and a PNG.
"""
from __future__ import annotations

import csv
from pathlib import Path

from lcm.train.log import save_figure

COLUMNS = ("step", "sentences_seen", "nll_per_token", "bleu", "exact_match", "round_trip_cosine")
CSV_FILE = "heldout.csv"
PLOT_FILE = "quality.png"


def record(directory: Path, row: dict[str, float], step: int) -> list[dict[str, float]]:
    """Add ``row`` to the curve (dropping rows past ``step`` left by a killed run); all rows.
    Figures beyond ``COLUMNS`` (a learned space's anchor cosine, say) become columns too."""
    path = directory / CSV_FILE
    rows = read_curve(path) if path.is_file() else []
    columns = list(COLUMNS) + [k for k in row if k not in COLUMNS]
    rows = [r for r in rows if r["step"] < step] + [row]
    rows = [{k: r.get(k, float("nan")) for k in columns} for r in rows]
    directory.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, directory / PLOT_FILE)
    return rows


def read_curve(path: Path) -> list[dict[str, float]]:
    with Path(path).open(newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def plot(rows: list[dict[str, float]], path: Path) -> Path:
    """Round-trip cosine (where measured) and token NLL against sentences seen."""
    # lazy: the Agg backend is chosen before pyplot loads
    import matplotlib

    matplotlib.use("Agg")
    # lazy: the Agg backend is chosen before pyplot loads
    import matplotlib.pyplot as plt

    seen = [r["sentences_seen"] for r in rows]
    figure, left = plt.subplots(figsize=(7, 4))
    left.plot(seen, [r["nll_per_token"] for r in rows], color="tab:red", marker=".")
    left.set(xlabel="sentences seen", ylabel="held-out NLL (nats/token)",
             title="decoder quality on held-out sentences (greedy, clean vectors)")
    left.grid(alpha=0.3)
    right = left.twinx()
    right.plot(seen, [r["round_trip_cosine"] for r in rows], color="tab:blue", marker=".")
    right.plot(seen, [r["bleu"] / 100 for r in rows], color="tab:green", marker=".", linestyle="--")
    right.set(ylabel="round-trip cosine (blue), BLEU/100 (green)", ylim=(0, 1))
    return save_figure(figure, path)
