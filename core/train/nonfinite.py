"""Never go on with NaN: training stops after a few consecutive steps whose loss is not finite."""
from __future__ import annotations

import math

from lcm.errors import TrainingDivergedError
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
