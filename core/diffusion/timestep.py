"""The diffusion timestep embedding every diffusion head conditions on (DiT's ``TimestepEmbedder``).

A 256-d sinusoid of the integer step (cos and sin at geometric frequencies), then
Linear -> SiLU -> Linear to the model width. Both LCM diffusion heads use it: the Two-Tower's
denoiser feeds it to AdaLN modulation, the One-Tower adds it to its noisy inputs.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoid(timesteps: Tensor, dim: int = 256, max_period: float = 10_000.0) -> Tensor:
    """(...,) integer steps -> (..., dim) [cos | sin] features, float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                            device=timesteps.device) / half)
    angles = timesteps.float()[..., None] * freqs  # (..., half)
    features = torch.cat([angles.cos(), angles.sin()], dim=-1)
    if dim % 2:
        features = torch.nn.functional.pad(features, (0, 1))
    return features


class TimestepEmbedding(nn.Module):
    """(...,) diffusion steps -> (..., model_dim) embeddings."""

    def __init__(self, model_dim: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.fc1 = nn.Linear(frequency_dim, model_dim)
        self.fc2 = nn.Linear(model_dim, model_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in (self.fc1, self.fc2):
            nn.init.normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    def forward(self, timesteps: Tensor) -> Tensor:
        features = sinusoid(timesteps, self.frequency_dim).to(self.fc1.weight.dtype)
        return self.fc2(nn.functional.silu(self.fc1(features)))
