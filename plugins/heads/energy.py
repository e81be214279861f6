"""The ``energy`` head: a one-step sampler trained by the energy score (CALM, arXiv 2510.27688).

A small generator MLP maps the trunk's hidden state and a fresh noise vector to a concept, so a
next concept is drawn in one pass (no denoising chain) yet differs from draw to draw, unlike
``mse``'s mean. It learns by the energy score, a strictly proper scoring rule: for each position
it draws ``samples`` concepts x̂ and minimises ``E||x̂ - y||^β - ½ E||x̂ - x̂'||^β`` (the second
term over pairs of distinct draws), whose minimum is the true distribution of the next concept
(for β in (0, 2)). The score needs only samples, no likelihood, so the generator is free-form.

Generation draws each document's noise from its own generator (``state.generators``, row i
seeded seed + i), scaled by ``temperature``: 0 gives the deterministic noise-free draw.
All concepts are normalised, as for every head.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcm.fields import bounded
from lcm.hookspecs import hookimpl
from lcm.model.heads import (GenerationState, HeadModule, LossOutput, context_states,
                             next_concept_pairs)
from lcm.model.transformer import RMSNorm


@dataclass
class EnergyHeadConfig:
    samples: int = bounded(4, ge=2)
    """Draws per position in the loss (the diversity term needs at least two)."""
    noise_dim: int = bounded(64, ge=1)
    """Size of the noise vector the generator reads beside the trunk's state."""
    layers: int = bounded(2, ge=1)
    """Residual MLP blocks of the generator."""
    width: int = bounded(0, ge=0)
    """Hidden width of the generator (0: the trunk's model dimension)."""
    beta: float = bounded(1.0, gt=0, lt=2)
    """Exponent of the distances in the energy score; strictly proper for 0 < β < 2."""
    temperature: float = bounded(1.0, ge=0)
    """Scale of the noise at generation (1: the trained distribution, 0: one fixed draw)."""


class GeneratorBlock(nn.Module):
    """x + W2 silu(W1 norm(x)): the generator's unit of depth."""

    def __init__(self, width: int, eps: float):
        super().__init__()
        self.norm = RMSNorm(width, eps)
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.outer(F.silu(self.inner(self.norm(x))))


class ConceptGenerator(nn.Module):
    """(N, d) trunk states and (N, S, noise_dim) noise -> (N, S, D): S drawn concepts each (the
    state is projected once per position, then shared by its draws)."""

    def __init__(self, model_dim: int, noise_dim: int, width: int, layers: int,
                 concept_dim: int, eps: float):
        super().__init__()
        self.state_in = nn.Linear(model_dim, width)
        self.noise_in = nn.Linear(noise_dim, width, bias=False)
        self.blocks = nn.Sequential(*(GeneratorBlock(width, eps) for _ in range(layers)))
        self.final_norm = RMSNorm(width, eps)
        self.output = nn.Linear(width, concept_dim)

    def forward(self, hidden: Tensor, noise: Tensor) -> Tensor:
        x = self.state_in(hidden)[:, None] + self.noise_in(noise)  # (N, S, width)
        return self.output(self.final_norm(self.blocks(x)))


def energy_score(drawn: Tensor, target: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """(N, S, D) draws, (N, D) targets -> per position (N,) the fidelity ``E||x̂ - y||^β`` and
    the diversity ``E||x̂ - x̂'||^β`` over the S(S-1) ordered pairs of distinct draws."""
    samples = drawn.shape[1]
    norms = drawn.pow(2).sum(-1)  # (N, S)
    to_target = norms + target.pow(2).sum(-1)[:, None] - 2 * (drawn @ target[:, :, None])[..., 0]
    fidelity = _powered(to_target.clamp(min=0), beta).mean(dim=1)  # (N,)
    squared = norms[:, :, None] + norms[:, None, :] - 2 * drawn @ drawn.transpose(1, 2)  # (N, S, S)
    distinct = ~torch.eye(samples, dtype=torch.bool, device=drawn.device)
    return fidelity, _powered(squared[:, distinct].clamp(min=0), beta).mean(dim=1)


def _powered(squared_distance: Tensor, beta: float, eps: float = 1e-8) -> Tensor:
    """||.||^β from squared distances, smoothed at 0 (finite gradients for β < 1). Squared
    distances come from Gram matrices: the (N, S, S, D) differences cost more than the
    generator itself."""
    return (squared_distance + eps).pow(beta / 2)


class EnergyHead(HeadModule):
    name = "energy"
    description = "CALM energy-score head: one-step generator MLP (state + noise -> concept)"
    Config = EnergyHeadConfig
    sampling_options = ("temperature",)

    def __init__(self, config, trunk, concept_dim):
        super().__init__(config, trunk, concept_dim)
        options = self.config
        self.generator = ConceptGenerator(trunk.model_dim, options.noise_dim,
                                          options.width or trunk.model_dim, options.layers,
                                          concept_dim, trunk.norm_eps)

    def loss(self, backbone, concepts, mask, target_mask=None):
        hidden = context_states(backbone, concepts, mask)  # (B, T, d)
        targets, valid = next_concept_pairs(concepts, mask, target_mask)
        states, targets = hidden[:, :-1][valid], targets[valid].float()  # (N, d), (N, D)
        samples = self.config.samples
        noise = torch.randn(states.shape[0], samples, self.config.noise_dim,
                            device=states.device, dtype=states.dtype)
        drawn = self.generator(states, noise).float()  # (N, S, D)
        fidelity, diversity = energy_score(drawn, targets, self.config.beta)
        count = max(states.shape[0], 1)
        loss = (fidelity - 0.5 * diversity).sum() / count
        with torch.no_grad():
            l2 = (drawn[:, 0] - targets).norm(dim=-1).sum() / count
        return LossOutput(loss, {"energy": float(loss.detach()), "l2": float(l2),
                                 "fidelity": float(fidelity.detach().sum() / count),
                                 "diversity": float(diversity.detach().sum() / count),
                                 "concepts": float(valid.sum())})

    def next_concept(self, backbone, state: GenerationState) -> Tensor:
        hidden = state.hidden  # (B, d)
        shape = (self.config.noise_dim,)
        noise = (state.generators.randn(shape, hidden.device, hidden.dtype) if state.generators
                 else torch.randn(hidden.shape[0], *shape, device=hidden.device, dtype=hidden.dtype))
        return self.generator(hidden, self.config.temperature * noise[:, None])[:, 0]  # (B, D)


@hookimpl
def register_heads(register) -> None:
    register(EnergyHead)
