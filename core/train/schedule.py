"""Linear warm-up, then cosine decay to a floor: the reference LCM pre-training schedule.

A plain ``LambdaLR`` handed to DeepSpeed, which steps it and saves its state in every
checkpoint; the multiplier is a pure function of the step, so a resumed run follows the same
curve exactly.
"""
from __future__ import annotations

import math
from functools import partial

from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """The learning-rate multiplier at optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(optimizer, *, warmup_steps: int, total_steps: int, min_ratio: float):
    """A ``LambdaLR`` over ``optimizer`` following :func:`warmup_cosine`."""
    return LambdaLR(optimizer, partial(warmup_cosine, warmup_steps=warmup_steps,
                                       total_steps=total_steps, min_ratio=min_ratio))
