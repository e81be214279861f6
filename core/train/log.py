"""The training log: a CSV file, TensorBoard events and a PNG loss plot in ``<output>/logs``.

Only rank 0 writes. The CSV is rewritten from the trainer's history on resume, so the rows a
killed run logged after its last checkpoint do not appear twice.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

from torch.utils.tensorboard import SummaryWriter

COLUMNS = ("step", "loss", "lr", "grad_norm", "concepts_per_s", "elapsed_s", "skipped_steps")
"""``skipped_steps``: optimizer steps DeepSpeed skipped so far (fp16 overflow)."""
CSV_FILE = "train_log.csv"
PLOT_FILE = "loss.png"


class TrainingLog:
    """Appends one row per logged step to the CSV and TensorBoard."""

    def __init__(self, directory: Path, history: list[dict[str, float]], first_step: int):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.csv_path = directory / CSV_FILE
        with self.csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(history)
        # purge_step drops events a killed run wrote after the checkpoint it resumes from.
        self.tensorboard = SummaryWriter(str(directory), purge_step=first_step + 1)

    def write(self, row: dict[str, float], head_metrics: dict[str, float] | None = None) -> None:
        """A logged row; ``head_metrics``: the head's own figures of that step (TensorBoard
        ``head/<name>``; they differ by head, so the CSV keeps its fixed columns)."""
        with self.csv_path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=COLUMNS).writerow(row)
        step = int(row["step"])
        for key in ("loss", "lr", "grad_norm", "concepts_per_s"):
            self.tensorboard.add_scalar(f"train/{key}", row[key], step)
        for name, value in (head_metrics or {}).items():
            self.tensorboard.add_scalar(f"head/{name}", value, step)

    def close(self) -> None:
        self.tensorboard.close()


def read_log(path: Path) -> list[dict[str, float]]:
    """The rows of a CSV training log, as numbers."""
    with Path(path).open(newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def plot_losses(history: Iterable[dict[str, float]], path: Path, title: str = "training loss") -> Path:
    """Draw loss against step into a PNG (matplotlib's Agg backend: no display needed)."""
    # lazy: the Agg backend is chosen before pyplot loads
    import matplotlib

    matplotlib.use("Agg")
    # lazy: the Agg backend is chosen before pyplot loads
    import matplotlib.pyplot as plt

    rows = list(history)
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot([r["step"] for r in rows], [r["loss"] for r in rows], linewidth=1.2)
    axis.set(xlabel="step", ylabel="loss", title=title)
    axis.grid(alpha=0.3)
    return save_figure(figure, path)


def save_figure(figure, path: Path) -> Path:
    """Write a matplotlib figure to ``path`` through a temporary file, and close it."""
    # lazy: the Agg backend is chosen before pyplot loads
    import matplotlib.pyplot as plt

    figure.tight_layout()
    temporary = path.with_name(path.stem + ".tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    temporary.replace(path)
    return path
