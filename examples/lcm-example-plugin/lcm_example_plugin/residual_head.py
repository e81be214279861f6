"""A head that predicts the change from the current concept rather than the next concept itself.

next = current + PostNet(hidden). Shows what a third-party head needs: subclass HeadModule,
implement ``loss`` and ``next_concept``, and read the model only through the ``Backbone`` it is
handed (``embed``, ``contextualize``, ``new_cache``; see the README's plugin section).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lcm.model.heads import (Backbone, GenerationState, HeadModule, LossOutput, last_real,
                             next_concept_pairs)


@dataclass
class ResidualHeadConfig:
    delta_scale: float = 1.0
    """Multiplies the predicted change; < 1 keeps generations close to the prompt."""


class ResidualMseHead(HeadModule):
    name = "residual_mse"
    description = "next = current + predicted change, MSE loss (example plugin)"
    Config = ResidualHeadConfig

    def __init__(self, config, trunk, concept_dim):
        super().__init__(config, trunk, concept_dim)
        self.postnet = nn.Linear(trunk.model_dim, concept_dim)

    def loss(self, backbone: Backbone, concepts, mask, target_mask=None):
        hidden = backbone.contextualize(backbone.embed(concepts), mask)  # (B, T, d)
        predicted = concepts[:, :-1] + self.config.delta_scale * self.postnet(hidden[:, :-1])
        targets, valid = next_concept_pairs(concepts, mask, target_mask)
        per_concept = (predicted.float() - targets.float()).pow(2).mean(-1)  # (B, T-1)
        loss = (per_concept * valid).sum() / valid.sum().clamp(min=1)
        return LossOutput(loss, {"mse": float(loss.detach())})

    def next_concept(self, backbone: Backbone, state: GenerationState):
        current = last_real(state.context, state.context_mask)  # (B, D)
        return current + self.config.delta_scale * self.postnet(state.hidden)
