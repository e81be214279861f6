"""The ``quant_c`` head: Quant-LCM-c. Predicts the continuous residual target of each codebook
level and snaps it to that level's nearest codeword, coarse to fine.

Level k's output q_k (see ``quantized``) regresses the residual x - p_k that the coarser levels
left (MSE, teacher forcing with the true codes' partial reconstruction p_k). Level 0's target is
the whole concept, so q_0 alone is a Base-LCM-like continuous prediction (logged as ``l2``).
Generation snaps q_0 to codebook 0, feeds the choice back, predicts the next residual, snaps it
to codebook 1, and so on for ``snap_codebooks`` levels; the concept is the sum of the choices.
Deterministic: the same context always gives the same concept.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from lcm.errors import UserError
from lcm.hookspecs import hookimpl
from lcm.plugins.heads.quantized import QuantHeadConfig, QuantizedHead
from lcm.quantize.rvq import nearest


@dataclass
class QuantCConfig(QuantHeadConfig):
    snap_codebooks: Optional[int] = None
    """Codebooks walked at generation (the first ones); None: all that the head uses."""


class QuantCHead(QuantizedHead):
    name = "quant_c"
    description = "Quant-LCM-c: regress each residual, snap it to its RVQ codebook, coarse to fine"
    Config = QuantCConfig
    sampling_options = ("snap_codebooks",)

    def __init__(self, config, trunk, concept_dim):
        super().__init__(config, trunk, concept_dim)
        snap = config.snap_codebooks
        if snap is not None and not 1 <= snap <= self.num_codebooks:
            raise UserError(f"head {self.name!r}: snap_codebooks={snap} must be between 1 and "
                            f"the {self.num_codebooks} codebooks it uses")

    def level_loss(self, queries, codes, partial, targets):
        residuals = targets[:, None] - partial  # (N, K, D): what each level has left to explain
        loss = (queries - residuals).pow(2).sum() / max(residuals.numel(), 1)  # 0 if empty
        with torch.no_grad():
            l2 = (queries[:, 0] - targets).norm(dim=-1).sum() / max(len(targets), 1)
        return loss, {"mse": float(loss.detach()), "l2": float(l2)}

    def generation_levels(self) -> int:
        return self.config.snap_codebooks or self.num_codebooks

    def choose(self, level, query, generators):
        return nearest(query, self.codebooks[level].float())


@hookimpl
def register_heads(register) -> None:
    register(QuantCHead)
