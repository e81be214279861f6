"""The ``one_tower`` head: the One-Tower diffusion LCM of the paper (never released by Meta).

One causal Transformer — the trunk itself — denoises. In training its input interleaves each
noisy concept with the clean one, ``[noisy_0, clean_0, noisy_1, clean_1, ...]``, both at the
concept's position; a noisy input is the PreNet of x_t plus the timestep embedding. The
attention mask lets

* clean_i see clean_0..clean_i (never a noisy slot), so clean states are exactly those of a
  plain causal pass over the clean concepts;
* noisy_i see clean_0..clean_{i-1} and itself, and no other noisy slot; for a share
  ``cfg_dropout`` of positions only itself (classifier-free guidance).

Generation therefore keeps the default ``start``/``append``: the trunk's KV cache holds the
clean concepts only. Each DDIM step feeds just the noisy candidate after that cache, reads its
output, and rolls the cache back; guided steps run the conditional and the context-blind
candidate as one batch over a duplicated cache.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcm.fields import bounded
from lcm.diffusion.config import DiffusionConfig
from lcm.diffusion.head import DiffusionHead
from lcm.diffusion.objective import diffusion_loss, guidance_dropout, noise_targets
from lcm.diffusion.timestep import TimestepEmbedding
from lcm.hookspecs import hookimpl
from lcm.model.heads import GenerationState, learned_positions
from lcm.model.transformer import KVCache


@dataclass
class OneTowerConfig:
    cfg_dropout: float = bounded(0.15, ge=0, lt=1)
    """Share of noisy positions that see no context in training (the paper's p=0.15)."""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    """Noise schedule, training objective and DDIM/guidance settings for generation."""


def interleaved_mask(mask: Tensor, dropped: Tensor | None = None) -> Tensor:
    """(B, T) real concepts -> (B, 2T, 2T) attention over ``[noisy_0, clean_0, noisy_1, ...]``.

    Slot 2i is noisy_i, slot 2i+1 clean_i. ``dropped`` (B, T) noisy slots see only themselves.
    Every slot sees itself, so no row is empty (pads' outputs are ignored).
    """
    B, T = mask.shape
    slots = torch.arange(2 * T, device=mask.device)
    concept, clean = slots // 2, slots % 2 == 1  # (2T,)
    before = concept[None, :] < concept[:, None]  # (2T, 2T): key's concept precedes query's
    same = concept[None, :] == concept[:, None]
    sees_clean = clean[None, :] & (before | (clean[:, None] & same))  # (2T, 2T)
    keys_real = mask.repeat_interleave(2, dim=1)  # (B, 2T)
    visible = sees_clean[None] & keys_real[:, None, :]  # (B, 2T, 2T)
    if dropped is not None:
        blind = (dropped.repeat_interleave(2, dim=1) & ~clean[None])  # (B, 2T) noisy rows
        visible = visible & ~blind[..., None]
    return visible | torch.eye(2 * T, dtype=torch.bool, device=mask.device)[None]


class OneTowerHead(DiffusionHead):
    name = "one_tower"
    description = "One-Tower diffusion LCM: the trunk denoises over interleaved clean/noisy concepts"
    Config = OneTowerConfig

    def __init__(self, config, trunk, concept_dim):
        super().__init__(config, trunk, concept_dim)
        self.time = TimestepEmbedding(trunk.model_dim)
        self.output = nn.Linear(trunk.model_dim, concept_dim)

    def noisy_inputs(self, backbone, latents: Tensor, timesteps: Tensor) -> Tensor:
        """(B, T, D) noisy concepts at (B, T) steps -> (B, T, d) trunk inputs."""
        return backbone.embed(latents) + self.time(timesteps)

    # ------------------------------------------------------------------ training
    def loss(self, backbone, concepts, mask, target_mask=None):
        noised = noise_targets(self.scheduler, concepts)
        noisy = self.noisy_inputs(backbone, noised.latents, noised.timesteps)  # (B, T, d)
        inputs = torch.stack([noisy, backbone.embed(concepts)], dim=2).flatten(1, 2)  # (B, 2T, d)
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0).repeat_interleave(2, dim=1)
        dropped = guidance_dropout(mask, self.config.cfg_dropout) if self.training else None
        hidden = backbone.contextualize(inputs, mask.repeat_interleave(2, dim=1), positions=positions,
                                     attn_mask=interleaved_mask(mask, dropped))  # (B, 2T, d)
        output = self.output(hidden[:, 0::2])  # (B, T, D): the noisy slots
        return diffusion_loss(self.scheduler, output, noised, learned_positions(mask, target_mask))

    # ------------------------------------------------------------------ generation
    def denoiser_for(self, backbone, state: GenerationState):
        cache, committed = state.cache, state.cache.length
        visible = cache.key_mask[:, :committed]  # (B, S) the clean context
        if self.scheduler.uses_guidance:  # both passes in one batch over a doubled cache
            cache = duplicated(cache)
            visible = torch.cat([visible, torch.zeros_like(visible)])  # (2B, S)
        positions = cache.real_counts()[:, None]  # (N, 1): the next concept's position
        attn_mask = F.pad(visible, (0, 1), value=True)[:, None, :]  # (N, 1, S + 1): + itself

        def denoise(latents: Tensor, t: int) -> Tensor:
            inputs = self.candidate_inputs(backbone, latents, t, state.memo)
            hidden = backbone.contextualize(inputs, cache=cache,
                                         positions=positions, attn_mask=attn_mask)
            cache.rollback(committed)  # the candidate is never part of the context
            return self.output(hidden[:, 0])
        return denoise

    def uncached_denoiser(self, backbone, state: GenerationState):
        context, mask = state.context, state.context_mask
        S = context.shape[1]
        counts = mask.sum(-1, keepdim=True)  # (B, 1): the candidate's position
        positions = torch.cat([(mask.long().cumsum(-1) - 1).clamp(min=0), counts], 1)
        slots_real = F.pad(mask, (0, 1), value=True)  # (B, S + 1)
        causal = torch.ones(S + 1, S + 1, dtype=torch.bool, device=mask.device).tril()
        own = torch.eye(S + 1, dtype=torch.bool, device=mask.device)
        attn_mask = causal[None] & slots_real[:, None, :] | own[None]  # (B, S + 1, S + 1)

        def conditional(latents: Tensor, t: int) -> Tensor:
            inputs = torch.cat([backbone.embed(context), self.candidate_inputs(backbone, latents, t)], 1)
            hidden = backbone.contextualize(inputs, positions=positions, attn_mask=attn_mask)
            return self.output(hidden[:, -1])

        def unconditional(latents: Tensor, t: int) -> Tensor:
            hidden = backbone.contextualize(self.candidate_inputs(backbone, latents, t), positions=counts)
            return self.output(hidden[:, 0])

        def denoise(latents: Tensor, t: int) -> Tensor:
            if not self.scheduler.uses_guidance:
                return conditional(latents, t)
            cond, uncond = latents.chunk(2)
            return torch.cat([conditional(cond, t), unconditional(uncond, t)])
        return denoise

    def candidate_inputs(self, backbone, latents: Tensor, t: int, memo: dict | None = None) -> Tensor:
        """(N, D) next-concept candidates at step ``t`` -> (N, 1, d) trunk inputs. The step is
        shared by the batch: its embedding is computed once, broadcast, and kept in ``memo``
        for the next concepts' same step."""
        key = ("one_tower_time", t)
        time = memo.get(key) if memo is not None else None
        if time is None:
            time = self.time(torch.full((1, 1), t, dtype=torch.long, device=latents.device))
            if memo is not None:
                memo[key] = time
        return backbone.embed(latents[:, None]) + time


def duplicated(cache: KVCache) -> KVCache:
    """A copy of ``cache`` holding every sequence twice (batch 2B), the original untouched."""
    twice = copy.copy(cache)
    index = torch.arange(cache.batch_size, device=cache.key_mask.device)
    twice.reorder(torch.cat([index, index]))
    return twice


@hookimpl
def register_heads(register) -> None:
    register(OneTowerHead)
