"""The gradient norm of an optimizer step, whatever the ZeRO stage: DeepSpeed reports it for
ZeRO stages 1-3 (and mixed precision), but returns nothing or 0.0 for ZeRO stage 0 in fp32, so
every trainer reads it the same way here rather than logging 0.0 on every row."""
from __future__ import annotations

from typing import Any, Optional

import torch


def unsharded_grad_norm(engine: Any) -> Optional[float]:
    """The norm of the gradients the engine's module holds (ZeRO stage 0); None otherwise.

    Read at an accumulation boundary before ``engine.step`` clips and clears the gradients;
    ZeRO stages keep gradients in their own partitions and report the norm themselves.
    """
    grads = [p.grad for p in engine.module.parameters() if p.grad is not None]
    if engine.zero_optimization_stage() > 0 or not grads:
        return None
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float())
                                                       for g in grads])))


def step_grad_norm(engine: Any, unsharded: Optional[float]) -> float:
    """The step's norm: DeepSpeed's where it reports a real one, else ``unsharded``."""
    reported = engine.get_global_grad_norm()
    if reported is not None and (unsharded is None or float(reported) != 0.0):
        return float(reported)
    return float(unsharded or 0.0)
