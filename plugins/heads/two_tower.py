"""The ``two_tower`` head: the Two-Tower diffusion LCM of the paper and its reference code.

The trunk is the *contextualizer*: a causal Transformer over the clean concepts. The head owns
the *denoiser*, which predicts concept i from its noisy version x_t:

* its own input projection (D -> d) of x_t and output projection (d -> D);
* layers of self-attention restricted to the diagonal (each position attends only to itself,
  so it acts per position), cross-attention to the contextualizer outputs, and a SwiGLU FFN;
* cross-attention keys are [zero vector, c_0, ..., c_{n-1}]: position i sees the zero vector
  and the contextualizer outputs *before* i, never c_i (which has read concept i itself);
* every sub-block is AdaLN-modulated by the timestep embedding: ``x + gate * f(norm(x) *
  (1 + scale) + shift)``, the modulation Linear zero-initialised so blocks start as identity;
* classifier-free guidance: in training a share ``cfg_dropout`` of positions sees only the zero
  vector; in generation the conditional and unconditional passes run as one batch.

Generation caches twice: the trunk's KV cache (one contextualizer step per new concept) and,
per denoiser layer, the cross-attention keys/values of [zero, c_0, ...], extended by one
position per concept and reused by all the DDIM steps.

The diagonal self-attention keeps its query/key projections, as the reference does: they get
no gradient (softmax over one key is 1) but keep checkpoints and parameter counts comparable.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcm.fields import bounded, require_valid
from lcm.diffusion.config import DiffusionConfig
from lcm.diffusion.head import DiffusionHead
from lcm.diffusion.objective import diffusion_loss, guidance_dropout, noise_targets
from lcm.diffusion.timestep import TimestepEmbedding
from lcm.hookspecs import hookimpl
from lcm.model.config import TransformerConfig
from lcm.model.heads import GenerationState, context_states, learned_positions
from lcm.model.transformer import Attention, RMSNorm, SwiGLU


@dataclass
class TwoTowerConfig:
    denoiser_layers: int = 0
    """Denoiser depth (0: as many layers as the trunk)."""
    denoiser_heads: int = 0
    """Attention heads of the denoiser (0: the trunk's)."""
    denoiser_ffn_dim: int = 0
    """SwiGLU width of the denoiser (0: the trunk's)."""
    cfg_dropout: float = bounded(0.15, ge=0, lt=1)
    """Share of training positions that see no context (trains the unconditional model)."""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    """Noise schedule, training objective and DDIM/guidance settings for generation."""


def denoiser_config(trunk: TransformerConfig, options: TwoTowerConfig) -> TransformerConfig:
    """The denoiser's layer shapes: the trunk's width, with the head's depth/heads/FFN."""
    return dataclasses.replace(
        trunk, num_layers=options.denoiser_layers or trunk.num_layers,
        num_heads=options.denoiser_heads or trunk.num_heads,
        ffn_inner_dim=options.denoiser_ffn_dim or trunk.ffn_inner_dim, position_encoding="none")


class CrossAttention(nn.Module):
    """Multi-head attention of denoiser positions to (projected) contextualizer outputs."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        d, self.num_heads = config.model_dim, config.num_heads
        self.query = nn.Linear(d, d, bias=config.bias)
        self.key_value = nn.Linear(d, 2 * d, bias=config.bias)
        self.out = nn.Linear(d, d, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def keys_values(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S, d) -> keys and values, each (B, nh, S, hs): computed once per context."""
        B, S, d = context.shape
        k, v = self.key_value(context).split(d, dim=2)
        return (k.view(B, S, self.num_heads, -1).transpose(1, 2),
                v.view(B, S, self.num_heads, -1).transpose(1, 2))

    def forward(self, x: Tensor, keys: Tensor, values: Tensor, mask: Tensor,
                blind: int = 0) -> Tensor:
        """x (B, T, d) attends to keys/values (B - blind, nh, S, hs) where ``mask``
        (B - blind, T, S) is True; the last ``blind`` rows see only key 0, the zero vector,
        whose value is the same for every document: softmax over one key is 1, so their
        attention is that value, with no query, no scores and no copy of the keys."""
        B, T, d = x.shape
        seeing = B - blind
        q = self.query(x[:seeing]).view(seeing, T, self.num_heads, -1).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask[:, None])
        if blind:
            y = torch.cat([y, values[:1, :, :1].expand(blind, -1, T, -1)])  # (B, nh, T, hs)
        return self.dropout(self.out(y.transpose(1, 2).reshape(B, T, d)))


class DenoiserLayer(nn.Module):
    """Diagonal self-attention, cross-attention and FFN, each AdaLN-modulated by the timestep."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        d = config.model_dim
        self.self_attn_norm = RMSNorm(d, config.norm_eps)
        self.self_attn = Attention(config, layer_index=0)
        self.cross_attn_norm = RMSNorm(d, config.norm_eps)
        self.cross_attn = CrossAttention(config)
        self.ffn_norm = RMSNorm(d, config.norm_eps)
        self.ffn = SwiGLU(d, config.ffn_inner_dim, config.bias, config.dropout)
        self.modulation = nn.Linear(d, 9 * d)  # shift/scale/gate for each of the 3 sub-blocks

    def modulations(self, time: Tensor) -> tuple[Tensor, ...]:
        """(B, T, d) timestep embeddings -> shift/scale/gate of the 3 sub-blocks, 9 x (B, T, d)."""
        return self.modulation(F.silu(time)).chunk(9, dim=-1)

    def forward(self, x: Tensor, mods: tuple[Tensor, ...], keys: Tensor, values: Tensor,
                cross_mask: Tensor, blind: int = 0) -> Tensor:
        """x (B, T, d), ``modulations`` of the steps, keys/values (B, nh, S, hs), mask (B, T, S);
        ``blind``: trailing rows of x that see only the zero vector (``CrossAttention``)."""
        h = _modulate(self.self_attn_norm(x), mods[0], mods[1])
        x = x + mods[2] * self.diagonal_attention(h)
        h = _modulate(self.cross_attn_norm(x), mods[3], mods[4])
        x = x + mods[5] * self.cross_attn(h, keys, values, cross_mask, blind)
        h = _modulate(self.ffn_norm(x), mods[6], mods[7])
        return x + mods[8] * self.ffn(h)


    def diagonal_attention(self, h: Tensor) -> Tensor:
        """Self-attention where each position sees only itself: softmax over one key is 1, so
        it is the output projection of the values (query and key projections never run).
        Training takes the full path (attention dropout may drop that single weight; the
        planner counts the reference's FLOPs)."""
        if self.training:
            diagonal = torch.eye(h.shape[1], dtype=torch.bool, device=h.device)[None, None]
            return self.self_attn(h, None, diagonal, None)
        d = h.shape[-1]
        qkv = self.self_attn.qkv
        bias = qkv.bias[2 * d:] if qkv.bias is not None else None
        return self.self_attn.dropout(self.self_attn.out(F.linear(h, qkv.weight[2 * d:], bias)))


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


@dataclass
class CrossContext:
    """Cross-attention keys/values of [zero vector, contextualizer outputs] for every layer."""

    keys: list[Tensor]  # per layer (B, nh, 1 + S, hs)
    values: list[Tensor]
    mask: Tensor  # (B, 1 + S) bool: the zero vector and the real context concepts
    blind: int = 0
    """Query rows after the B of the context that see only the zero vector (guidance's
    unconditional pass): they share key 0, so nothing is copied for them."""

    def extended(self, other: "CrossContext") -> "CrossContext":
        """This context followed by ``other``'s positions."""
        return CrossContext([torch.cat(p, 2) for p in zip(self.keys, other.keys)],
                            [torch.cat(p, 2) for p in zip(self.values, other.values)],
                            torch.cat([self.mask, other.mask], 1))

    def rows(self, index: Tensor) -> "CrossContext":
        """Only the documents ``index`` (the others have stopped)."""
        return CrossContext([k.index_select(0, index) for k in self.keys],
                            [v.index_select(0, index) for v in self.values],
                            self.mask.index_select(0, index))

    def with_unconditional(self) -> "CrossContext":
        """For twice the batch of queries: first conditioned, then seeing only the zero vector
        (guidance); the keys/values are this context's own, not duplicated."""
        return CrossContext(self.keys, self.values, self.mask, blind=self.mask.shape[0])

    def zero_vector_only(self) -> "CrossContext":
        """What an unconditional pass sees: the zero vector's keys/values alone."""
        return CrossContext([k[:, :, :1] for k in self.keys], [v[:, :, :1] for v in self.values],
                            self.mask[:, :1])


class DenoiserTower(nn.Module):
    """Noisy concepts (B, T, D) + steps (B, T) + cross context -> the prediction (B, T, D)."""

    def __init__(self, config: TransformerConfig, concept_dim: int):
        super().__init__()
        d = config.model_dim
        self.input = nn.Linear(concept_dim, d)
        self.time = TimestepEmbedding(d)
        self.layers = nn.ModuleList(DenoiserLayer(config) for _ in range(config.num_layers))
        self.final_norm = RMSNorm(d, config.norm_eps)
        self.output = nn.Linear(d, concept_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.02) projections, zero biases; AdaLN modulation zero (identity blocks)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.time.reset_parameters()
        for layer in self.layers:
            nn.init.zeros_(layer.modulation.weight)
            nn.init.zeros_(layer.modulation.bias)

    def cross_context(self, context: Tensor, mask: Tensor) -> CrossContext:
        """Keys/values of contextualizer outputs ``context`` (B, S, d), ``mask`` (B, S)."""
        kv = [layer.cross_attn.keys_values(context) for layer in self.layers]
        return CrossContext([k for k, _ in kv], [v for _, v in kv], mask)

    def zero_prefixed(self, context: Tensor, mask: Tensor) -> CrossContext:
        """The cross context of [zero vector, ``context``]: what position 0 and guidance see."""
        zero = context.new_zeros(context.shape[0], 1, context.shape[2])
        real = torch.ones(mask.shape[0], 1, dtype=torch.bool, device=mask.device)
        return self.cross_context(torch.cat([zero, context], 1), torch.cat([real, mask], 1))

    def step_modulations(self, timesteps: Tensor) -> list[tuple[Tensor, ...]]:
        """Every layer's AdaLN modulation at (B, T) ``timesteps``."""
        time = self.time(timesteps)  # (B, T, d)
        return [layer.modulations(time) for layer in self.layers]

    def next_position(self, latents: Tensor, t: int, cross: CrossContext,
                      memo: dict | None = None) -> Tensor:
        """Denoise one next concept per row: (N, D) latents at step ``t``, seeing every key
        ``cross.mask`` allows. The step is shared by the batch, so its AdaLN modulation is
        computed once, broadcast, and kept in ``memo`` for the next concepts' same step."""
        key = ("two_tower_modulations", t)
        mods = memo.get(key) if memo is not None else None
        if mods is None:
            steps = torch.full((1, 1), t, dtype=torch.long, device=latents.device)
            mods = self.step_modulations(steps)
            if memo is not None:
                memo[key] = mods
        return self.run_layers(latents[:, None], mods, cross, cross.mask[:, None, :])[:, 0]

    def forward(self, latents: Tensor, timesteps: Tensor, cross: CrossContext,
                cross_mask: Tensor) -> Tensor:
        """``cross_mask`` (B, T, 1 + S): which keys each position may see."""
        return self.run_layers(latents, self.step_modulations(timesteps), cross, cross_mask)

    def run_layers(self, latents: Tensor, mods: list[tuple[Tensor, ...]], cross: CrossContext,
                   cross_mask: Tensor) -> Tensor:
        """(B, T, D) latents through the layers under per-layer ``mods`` -> (B, T, D)."""
        x = self.input(latents)  # (B, T, d)
        for layer, layer_mods, keys, values in zip(self.layers, mods, cross.keys, cross.values):
            x = layer(x, layer_mods, keys, values, cross_mask, cross.blind)
        return self.output(self.final_norm(x))  # (B, T, D)


def shifted_causal_mask(mask: Tensor, dropped: Tensor | None = None) -> Tensor:
    """(B, T) real concepts -> (B, T, 1 + T): position i sees the zero vector (key 0) and the
    real contextualizer outputs of positions before i (keys 1..i); ``dropped`` (B, T) rows see
    only the zero vector."""
    B, T = mask.shape
    earlier = torch.ones(T, T + 1, dtype=torch.bool, device=mask.device).tril()  # (T, 1 + T)
    keys_real = F.pad(mask, (1, 0), value=True)  # (B, 1 + T)
    visible = earlier[None] & keys_real[:, None, :]  # (B, T, 1 + T)
    if dropped is not None:
        context_keys = torch.arange(T + 1, device=mask.device) > 0  # all but the zero vector
        visible = visible & ~(dropped[..., None] & context_keys)
    return visible


class TwoTowerHead(DiffusionHead):
    name = "two_tower"
    description = "Two-Tower diffusion LCM: causal contextualizer + AdaLN cross-attention denoiser"
    Config = TwoTowerConfig

    def __init__(self, config, trunk, concept_dim):
        super().__init__(config, trunk, concept_dim)
        layers = require_valid(denoiser_config(trunk, self.config), "two_tower denoiser")
        self.denoiser = DenoiserTower(layers, concept_dim)

    # ------------------------------------------------------------------ training
    def loss(self, backbone, concepts, mask, target_mask=None):
        context = context_states(backbone, concepts, mask)  # (B, T, d)
        cross = self.denoiser.zero_prefixed(context, mask)
        dropped = guidance_dropout(mask, self.config.cfg_dropout) if self.training else None
        noised = noise_targets(self.scheduler, concepts)
        output = self.denoiser(noised.latents, noised.timesteps, cross,
                               shifted_causal_mask(mask, dropped))
        return diffusion_loss(self.scheduler, output, noised, learned_positions(mask, target_mask))

    # ------------------------------------------------------------------ generation
    def start(self, backbone, state: GenerationState) -> None:
        """Contextualize the prompt (filling the trunk's KV cache) and project every output
        into the denoiser's cross-attention keys/values once; ``state.extra`` keeps them."""
        context = self.read_prompt(backbone, state)  # (B, S, d)
        state.extra = self.denoiser.zero_prefixed(context, state.context_mask)

    def append(self, backbone, state: GenerationState, concepts) -> None:
        super().append(backbone, state, concepts)
        real = torch.ones(state.batch_size, 1, dtype=torch.bool, device=concepts.device)
        state.extra = state.extra.extended(self.denoiser.cross_context(state.hidden[:, None], real))

    def keep_rows(self, state: GenerationState, rows) -> None:
        super().keep_rows(state, rows)
        if state.extra is not None:
            state.extra = state.extra.rows(rows)

    def denoiser_for(self, backbone, state: GenerationState):
        cross: CrossContext = state.extra
        if self.scheduler.uses_guidance:
            cross = cross.with_unconditional()  # 2B queries: both passes in one batch
        return lambda latents, t: self.denoiser.next_position(latents, t, cross, state.memo)

    def uncached_denoiser(self, backbone, state: GenerationState):
        def denoise(latents: Tensor, t: int) -> Tensor:
            context = context_states(backbone, state.context, state.context_mask)  # (B, S, d)
            cross = self.denoiser.zero_prefixed(context, state.context_mask)
            if not self.scheduler.uses_guidance:
                return self.denoiser.next_position(latents, t, cross)
            cond, uncond = latents.chunk(2)
            return torch.cat([self.denoiser.next_position(cond, t, cross),
                              self.denoiser.next_position(uncond, t, cross.zero_vector_only())])
        return denoise


@hookimpl
def register_heads(register) -> None:
    register(TwoTowerHead)
