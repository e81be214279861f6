"""Never go on with NaN: training stops after a few consecutive steps whose loss is not finite,
and a run whose final loss or weights are not finite exports nothing."""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from lcm.errors import TrainingDivergedError
from lcm.model.weights import nonfinite_tensors
from lcm.train.distributed import all_reduce_sum


class NonFiniteLosses:
    """Counts consecutive steps with a NaN/inf loss on any rank; raises at ``limit``."""

    def __init__(self, limit: int, device: str):
        self.limit, self.device, self.count = limit, device, 0

    def check(self, loss_sum: float, step: int) -> None:
        (bad,) = all_reduce_sum([0.0 if math.isfinite(loss_sum) else 1.0], self.device)
        self.count = self.count + 1 if bad else 0
        if self.count >= self.limit:
            raise TrainingDivergedError(
                f"training stopped at step {step}: the loss was NaN or inf for {self.count} "
                f"consecutive steps (train.max_nonfinite_steps); no model was exported (lower "
                f"train.lr, or check the data and normaliser)")


def check_exportable(state: Mapping[str, Any], last_loss: Optional[float],
                     step: int) -> None:
    """Refuse to export a diverged run: a final loss or weights that are not finite (fewer
    non-finite steps in a row than ``train.max_nonfinite_steps`` still leave such a model)."""
    if last_loss is not None and not math.isfinite(last_loss):
        raise TrainingDivergedError(
            f"training ended at step {step} with a loss of {last_loss}; no model was exported "
            f"(lower train.lr, set train.grad_clip, or check the data and normaliser)")
    bad = nonfinite_tensors(state)
    if bad:
        first = next(iter(bad))
        raise TrainingDivergedError(
            f"training ended at step {step} with {sum(bad.values())} NaN/inf weight(s) in "
            f"{len(bad)} tensor(s) (first: {first}); no model was exported (lower train.lr, "
            f"set train.grad_clip, or check the data and normaliser)")
