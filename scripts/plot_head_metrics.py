"""Plot head metrics of several training runs side by side, from their TensorBoard logs.

    python scripts/plot_head_metrics.py OUT.png METRIC[,METRIC...] LABEL=TRAINING_DIR ...

e.g. the decoder_ce runs with and without MSE mixing (docs/decoder_ce_mixing.png):
    python scripts/plot_head_metrics.py docs/decoder_ce_mixing.png token_nll,l2 \\
        "token loss only=runs/heads_wiki/decoder_ce-training" \\
        "+0.5 MSE=runs/heads_wiki/decoder_ce_mse-training"

Each metric is one panel (``head/METRIC`` as the trainer logs it), smoothed by a moving
average of 5 log rows so the trend shows through the batch-to-batch noise.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from lcm.train.log import save_figure

SMOOTHING = 5


def read_scalars(training_dir: Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one scalar of a run's TensorBoard log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted((training_dir / "logs").glob("events.out.tfevents.*"))
    if not events:
        raise SystemExit(f"{training_dir}/logs: no TensorBoard log")
    accumulator = EventAccumulator(str(events[-1]))
    accumulator.Reload()
    if tag not in accumulator.Tags()["scalars"]:
        raise SystemExit(f"{training_dir}: no {tag} logged")
    points = accumulator.Scalars(tag)
    return np.array([p.step for p in points]), np.array([p.value for p in points])


def smoothed(values: np.ndarray, width: int = SMOOTHING) -> np.ndarray:
    if len(values) < width:
        return values
    return np.convolve(values, np.ones(width) / width, mode="valid")


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output, metrics, runs = Path(argv[0]), argv[1].split(","), [a.split("=", 1) for a in argv[2:]]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for label, directory in runs:
            steps, values = read_scalars(Path(directory), f"head/{metric}")
            axis.plot(steps[len(steps) - len(smoothed(values)):], smoothed(values), label=label)
        axis.set(xlabel="step", title=f"{metric} (moving average of {SMOOTHING} log rows)")
        axis.grid(alpha=0.3)
        axis.legend()
    save_figure(figure, output)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
