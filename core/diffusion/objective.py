"""The training objective diffusion heads share: noise the targets, score the prediction.

A head calls ``noise_targets`` on its clean concepts, runs its network on ``noised.latents`` at
``noised.timesteps``, and hands the output to ``diffusion_loss``. What the network predicts
(x0, epsilon or v), how timesteps are drawn and how steps are weighted all come from the
scheduler's ``DiffusionConfig``, so a recipe changes them without touching the head.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lcm.diffusion.scheduler import DDIMScheduler
from lcm.model.heads import LossOutput


@dataclass
class NoisedTargets:
    """Clean concepts, noised at random training steps, and what the network must output."""

    latents: Tensor
    """(B, T, D) noisy concepts x_t."""
    timesteps: Tensor
    """(B, T) long: the step t of each position."""
    target: Tensor
    """(B, T, D) the training target (x0, epsilon or v, per the configured prediction)."""


def noise_targets(scheduler: DDIMScheduler, clean: Tensor) -> NoisedTargets:
    """Draw a step and Gaussian noise per position of ``clean`` (B, T, D) and noise it."""
    timesteps = scheduler.sample_timesteps(clean.shape[:2], device=clean.device)  # (B, T)
    noise = torch.randn_like(clean)
    return NoisedTargets(scheduler.add_noise(clean, noise, timesteps), timesteps,
                         scheduler.training_target(clean, noise, timesteps))


def guidance_dropout(mask: Tensor, share: float) -> Tensor:
    """(B, T) positions that train the unconditional model (see no context): each with
    probability ``share`` (classifier-free guidance training; 0 disables it)."""
    return torch.rand(mask.shape, device=mask.device) < share


def diffusion_loss(scheduler: DDIMScheduler, output: Tensor, noised: NoisedTargets,
                   valid: Tensor) -> LossOutput:
    """Weighted mean squared error over the ``valid`` (B, T) positions.

    Each position's squared error is averaged over the D dimensions (as the ``mse`` head's
    loss), then weighted by the scheduler's per-step weight (1 unless ``clamp_snr``).
    """
    per_position = (output.float() - noised.target.float()).pow(2).mean(-1)  # (B, T)
    weights = scheduler.loss_weights(noised.timesteps)  # (B, T)
    count = valid.sum().clamp(min=1)
    loss = (per_position * weights * valid).sum() / count
    with torch.no_grad():
        unweighted = (per_position * valid).sum() / count
    return LossOutput(loss, {"mse": float(unweighted), "concepts": float(valid.sum())})
