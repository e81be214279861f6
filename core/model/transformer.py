"""The concept Transformer: a causal pre-norm decoder over concept embeddings.

RoPE (or learned positions), SwiGLU feed-forward blocks, RMSNorm, a final norm, and torch's
``scaled_dot_product_attention``. ``KVCache`` holds keys and values of the positions seen so far
so generation feeds one new concept per step instead of the whole prefix.

Padding: a ``mask`` [B, T] (True = real concept) may mark pads anywhere (left- or right-padded
batches). Pads are never attended to, and RoPE positions count real concepts only, so a document
gets the same outputs whatever padding surrounds it. Shapes: B batch, T new positions, S all
positions (cached + new), nh heads, hs head size, d model width.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcm.fields import require_valid
from lcm.model.config import TransformerConfig


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned gain (no centring, no bias)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # Computed in fp32 for stability under bf16/fp16 training.
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (rotate-half form) at arbitrary integer positions."""

    def __init__(self, head_dim: int, theta: float = 10_000.0):
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate ``x`` (B, nh, T, hs) by ``positions`` (B, T)."""
        return rotate(x, self.angles(positions, x.dtype))

    def angles(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos and sin (B, 1, T, hs) of ``positions`` (B, T): computed once per trunk pass and
        shared by every layer's queries and keys."""
        angles = positions.to(self.inv_freq.dtype)[..., None] * self.inv_freq  # (B, T, hs/2)
        angles = torch.cat((angles, angles), dim=-1)[:, None]  # (B, 1, T, hs)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate(x: Tensor, rotary: tuple[Tensor, Tensor]) -> Tensor:
    """``x`` (B, nh, T, hs) rotated by the (cos, sin) of ``RotaryEmbedding.angles``."""
    cos, sin = rotary
    first, second = x.chunk(2, dim=-1)
    rotated = torch.cat((-second, first), dim=-1)
    return x * cos + rotated * sin


class SwiGLU(nn.Module):
    """Feed-forward block ``W2(silu(W1 x) * W3 x)``."""

    def __init__(self, dim: int, inner_dim: int, bias: bool = False, dropout: float = 0.0):
        super().__init__()
        self.gate = nn.Linear(dim, inner_dim, bias=bias)
        self.up = nn.Linear(dim, inner_dim, bias=bias)
        self.down = nn.Linear(inner_dim, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))


class KVCache:
    """Keys and values of every layer for the positions processed so far.

    Slots are filled left to right; ``key_mask`` marks which slots hold real concepts (pads are
    never attended to). Storage grows by doubling. ``rollback(length)`` forgets later slots,
    e.g. after a diffusion head ran a noisy candidate through the trunk without committing it.
    """

    def __init__(self, config: TransformerConfig, batch_size: int, capacity: int = 64,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        shape = (batch_size, config.num_heads, max(capacity, 1), config.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_layers)]
        self.key_mask = torch.zeros(batch_size, shape[2], dtype=torch.bool, device=device)
        self.length = 0

    @property
    def batch_size(self) -> int:
        return self.key_mask.shape[0]

    def real_counts(self) -> Tensor:
        """Real (non-pad) concepts cached per sequence: the next RoPE position. (B,)"""
        return self.key_mask[:, : self.length].sum(-1)

    def reserve(self, new: int) -> None:
        """Make room for ``new`` more slots."""
        capacity = self.key_mask.shape[1]
        if self.length + new <= capacity:
            return
        grown = max(2 * capacity, self.length + new)
        pad = grown - capacity
        self.keys = [F.pad(k, (0, 0, 0, pad)) for k in self.keys]  # (B, nh, grown, hs)
        self.values = [F.pad(v, (0, 0, 0, pad)) for v in self.values]
        self.key_mask = F.pad(self.key_mask, (0, pad), value=False)

    def write(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store a layer's new (B, nh, T, hs) keys/values; return all of them (B, nh, S, hs)."""
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def rollback(self, length: int) -> None:
        """Forget every slot from ``length`` on."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot roll back a cache of length {self.length} to {length}")
        self.key_mask[:, length: self.length] = False
        self.length = length

    def reorder(self, index: Tensor) -> None:
        """Keep/duplicate sequences of the batch (e.g. to drop finished documents)."""
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]
        self.key_mask = self.key_mask.index_select(0, index)


class Attention(nn.Module):
    """Multi-head causal self-attention; reads and extends a ``KVCache`` when given one."""

    def __init__(self, config: TransformerConfig, layer_index: int):
        super().__init__()
        d, self.num_heads = config.model_dim, config.num_heads
        self.layer_index = layer_index
        self.qkv = nn.Linear(d, 3 * d, bias=config.bias)
        self.out = nn.Linear(d, d, bias=config.bias)
        self.attention_dropout = config.attention_dropout
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, rotary: tuple[Tensor, Tensor] | None,
                attn_mask: Tensor | None, cache: KVCache | None) -> Tensor:
        """``rotary``: RoPE's (cos, sin) of these positions (None: no rotation)."""
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)  # 3 x (B, T, d)
        q = q.view(B, T, self.num_heads, -1).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.num_heads, -1).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.num_heads, -1).transpose(1, 2)  # (B, nh, T, hs)
        if rotary is not None:
            q, k = rotate(q, rotary), rotate(k, rotary)
        if cache is not None:
            k, v = cache.write(self.layer_index, k, v)  # (B, nh, S, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=attn_mask is None,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, d)  # (B, T, d)
        return self.dropout(self.out(y))


class DecoderLayer(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + ffn(norm(x))``."""

    def __init__(self, config: TransformerConfig, layer_index: int):
        super().__init__()
        self.attn_norm = RMSNorm(config.model_dim, config.norm_eps)
        self.attn = Attention(config, layer_index)
        self.ffn_norm = RMSNorm(config.model_dim, config.norm_eps)
        self.ffn = SwiGLU(config.model_dim, config.ffn_inner_dim, config.bias, config.dropout)

    def forward(self, x: Tensor, rotary: tuple[Tensor, Tensor] | None,
                attn_mask: Tensor | None, cache: KVCache | None) -> Tensor:
        x = x + self.attn(self.attn_norm(x), rotary, attn_mask, cache)
        return x + self.ffn(self.ffn_norm(x))


class ConceptTransformer(nn.Module):
    """The trunk: (B, T, d) embedded concepts -> (B, T, d) contextualised states."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = require_valid(config, "transformer")
        self.rope = (RotaryEmbedding(config.head_dim, config.rope_theta)
                     if config.position_encoding == "rope" else None)
        self.positions = (nn.Embedding(config.max_seq_len, config.model_dim)
                          if config.position_encoding == "learned" else None)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_layers))
        self.final_norm = RMSNorm(config.model_dim, config.norm_eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02), residual outputs scaled by 1/sqrt(2 * layers)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.num_layers)
        for name, p in self.named_parameters():
            if p.dim() < 2:
                if name.endswith("bias"):
                    nn.init.zeros_(p)
                continue
            std = residual_std if name.endswith(("attn.out.weight", "ffn.down.weight")) else 0.02
            nn.init.normal_(p, 0.0, std)

    def new_cache(self, batch_size: int, capacity: int = 64, device=None,
                  dtype: torch.dtype | None = None) -> KVCache:
        """An empty cache on this model's device and dtype (unless given)."""
        param = self.final_norm.weight
        return KVCache(self.config, batch_size, capacity, device or param.device, dtype or param.dtype)

    def forward(self, x: Tensor, mask: Tensor | None = None, cache: KVCache | None = None, *,
                positions: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        """Contextualise ``x`` (B, T, d), the positions that follow those in ``cache``.

        mask: (B, T) bool, True for real concepts (None: all real).
        cache: read for earlier positions and extended with these (None: no history).
        positions: (B, T) explicit position indices (default: count of earlier real concepts).
        attn_mask: (B or 1, T, S) bool, True = may attend; replaces the causal/padding mask
            (heads with their own attention pattern, e.g. One-Tower's interleaving).
        """
        B, T, _ = x.shape
        start = cache.length if cache is not None else 0
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=x.device)
        if positions is None:
            offset = cache.real_counts() if cache is not None else torch.zeros(B, dtype=torch.long, device=x.device)
            positions = offset[:, None] + (mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        if self.positions is not None:
            if int(positions.max()) >= self.config.max_seq_len:
                raise ValueError(f"position {int(positions.max())} exceeds max_seq_len "
                                 f"{self.config.max_seq_len}")
            x = x + self.positions(positions)
        if cache is not None:
            cache.reserve(T)
            cache.key_mask[:, start:start + T] = mask
        if attn_mask is None and (cache is not None and start > 0 or _has_inner_padding(mask)):
            keys_real = cache.key_mask[:, : start + T] if cache is not None else mask
            attn_mask = causal_padding_mask(keys_real, start)
        if attn_mask is not None:
            attn_mask = attn_mask[:, None]  # (B, 1, T, S): the same for every head
        rotary = self.rope.angles(positions, x.dtype) if self.rope is not None else None
        for layer in self.layers:
            x = layer(x, rotary, attn_mask, cache)
        if cache is not None:
            cache.length = start + T
        return self.final_norm(x)


def _has_inner_padding(mask: Tensor) -> bool:
    """Whether a pad precedes a real concept somewhere (then plain causal masking is wrong)."""
    return bool((~mask[:, :-1] & mask[:, 1:]).any())


def causal_padding_mask(keys_real: Tensor, start: int) -> Tensor:
    """(B, T, S) bool: query ``start + i`` sees earlier-or-same real keys.

    A query always sees itself, so a pad query (whose output is ignored) never has an empty row,
    which would turn into NaN inside softmax.
    """
    B, S = keys_real.shape
    if S - start == 1:  # one new position (a cached generation step): it sees every real key
        visible = keys_real.clone()
        visible[:, -1] = True
        return visible[:, None, :]
    device = keys_real.device
    query_slots = torch.arange(start, S, device=device)[:, None]  # (T, 1)
    key_slots = torch.arange(S, device=device)[None, :]  # (1, S)
    causal = key_slots <= query_slots  # (T, S)
    return causal[None] & (keys_real[:, None, :] | (key_slots == query_slots)[None])  # (B, T, S)
