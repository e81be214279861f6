"""One training forward pass, traced for its cost: FLOPs and the activation bytes kept for backward.

The trace runs on the meta device (shapes, no memory, no arithmetic), so a 7B model is traced on a
laptop in about a second, through the model's and the head's own code:

* FLOPs: every ``nn.Linear`` call adds 2 x in x out x rows; attention adds 4 x head_dim per head
  per visible (query, key) pair (QK^T and AV). A training step is 3x the forward (backward
  computes gradients of inputs and weights). With a real mask the visible pairs are counted;
  a mask on the meta device has no values, so it is counted as causal (Tq x (S + 1) / 2 pairs),
  which overcounts a Two-Tower's diagonal self-attention.
* Activations: the bytes of every tensor autograd saves for backward
  (``torch.autograd.graph.saved_tensors_hooks``), with attention replaced by what a fused
  (flash) kernel saves: q, k, v, the output and one fp32 log-sum-exp per row, never the
  (T x S) weights.

A meta tensor has no values, so code that reads one (``float(loss)`` for a log, ``bool(mask.any())``
for a padding check) reads 0 during the trace (``reading_zero``): the traced batch is unpadded and
within every length limit, which is what those checks then conclude.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn


def visible_pairs(q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor | None,
                  is_causal: bool) -> float:
    """(query, key) pairs attention computes over all heads; see the module docstring."""
    B, nh, Tq, _ = q.shape
    S = k.shape[2]
    if attn_mask is not None and attn_mask.device.type != "meta":
        return float(attn_mask.expand(B, nh, Tq, S).sum())
    if attn_mask is not None or is_causal:
        return B * nh * Tq * (S + 1) / 2
    return float(B * nh * Tq * S)


@contextmanager
def counting_flops(model: nn.Module,
                   attention: Callable | None = None) -> Iterator[list[float]]:
    """Count forward FLOPs of Linear layers and attention while the block runs: [total].

    ``attention`` replaces the scaled-dot-product kernel (default: torch's own)."""
    total = [0.0]
    kernel = attention or F.scaled_dot_product_attention

    def linear_hook(module: nn.Linear, inputs, output) -> None:
        rows = inputs[0].numel() / module.in_features
        total[0] += 2 * module.in_features * module.out_features * rows

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        total[0] += 4 * q.shape[-1] * visible_pairs(q, k, attn_mask, is_causal)
        return kernel(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kw)

    handles = [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with mock.patch.object(F, "scaled_dot_product_attention", sdpa):
            yield total
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def reading_zero() -> Iterator[None]:
    """Let Python read a meta tensor's value as 0 (see the module docstring)."""
    patches = []
    for name, zero in (("item", 0), ("__float__", 0.0), ("__int__", 0), ("__bool__", False),
                       ("__index__", 0)):
        real = getattr(torch.Tensor, name)

        def read(self, *args, _real=real, _zero=zero):
            return _zero if self.device.type == "meta" else _real(self, *args)
        patches.append(mock.patch.object(torch.Tensor, name, read))
    for patch in patches:
        patch.start()
    try:
        yield
    finally:
        for patch in reversed(patches):
            patch.stop()


class _FusedAttention(torch.autograd.Function):
    """Stands in for a flash kernel on the meta device: saves what one saves, computes nothing."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = torch.empty_like(q)
        lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)  # (B, nh, T)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - the trace never runs backward
        q, k, v, _, _ = ctx.saved_tensors
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)


def fused_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
    return _FusedAttention.apply(q, k, v)


@dataclass
class StepCost:
    """Cost of one forward pass over a batch, as traced."""

    forward_flops: float
    activation_bytes: float
    concepts: int

    @property
    def train_flops(self) -> float:
        """Forward + backward (twice the forward: gradients of inputs and of weights)."""
        return 3 * self.forward_flops


def trace_training_forward(model: nn.Module, batch_size: int, length: int,
                           dtype: torch.dtype = torch.bfloat16) -> StepCost:
    """Trace ``model`` on a (batch_size, length) batch in ``dtype``, on the model's device
    (meta for a plan; a real device gives the same counts, which the tests check)."""
    model = model.to(dtype=dtype).train()
    device = next(model.parameters()).device
    concepts = torch.randn(batch_size, length, model.space.dim, device=device).to(dtype)
    mask = torch.ones(batch_size, length, device=device, dtype=torch.bool)
    weights = {id(p) for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        base = tensor if tensor._base is None else tensor._base
        if id(base) not in weights:  # weights are saved too, but they are not activations
            saved[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    with reading_zero(), counting_flops(model, fused_attention) as flops, \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = model(concepts, mask)  # holds the graph: saved tensors' ids stay unique
        total = float(sum(saved.values()))
    del output
    return StepCost(flops[0], total, batch_size * length)
