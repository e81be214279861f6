"""The ``mse`` head: Base-LCM. A PostNet (Linear d -> D) regresses the next concept with MSE.

Deterministic: it predicts the mean of the plausible next concepts, which the paper finds
blurrier than the diffusion heads' samples, but it is the simplest baseline and the fastest.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lcm.hookspecs import hookimpl
from lcm.model.heads import (GenerationState, HeadModule, LossOutput, context_states,
                             next_concept_pairs)


@dataclass
class MseHeadConfig:
    postnet_bias: bool = True
    """Bias of the PostNet Linear (the reference has one)."""


class MseHead(HeadModule):
    name = "mse"
    description = "Base-LCM: PostNet regression of the next concept, MSE loss"
    Config = MseHeadConfig

    def __init__(self, config, trunk, concept_dim):
        super().__init__(config, trunk, concept_dim)
        self.postnet = nn.Linear(trunk.model_dim, concept_dim, bias=self.config.postnet_bias)

    def loss(self, backbone, concepts, mask, target_mask=None):
        hidden = context_states(backbone, concepts, mask)  # (B, T, d)
        predicted = self.postnet(hidden[:, :-1])  # (B, T-1, D)
        targets, valid = next_concept_pairs(concepts, mask, target_mask)
        squared = (predicted.float() - targets.float()).pow(2)  # (B, T-1, D)
        count = valid.sum().clamp(min=1)
        per_concept = squared.sum(-1)  # (B, T-1): squared l2 per predicted concept
        loss = (per_concept * valid).sum() / (count * concepts.shape[-1])
        with torch.no_grad():
            l2 = (per_concept.sqrt() * valid).sum() / count
        return LossOutput(loss, {"mse": float(loss.detach()), "l2": float(l2),
                                 "concepts": float(valid.sum())})

    def next_concept(self, backbone, state: GenerationState):
        return self.postnet(state.hidden)  # (B, d) -> (B, D)


@hookimpl
def register_heads(register) -> None:
    register(MseHead)
