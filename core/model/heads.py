"""The base class of every prediction head, with the default generation steps.

The contract itself (the head's methods, ``Backbone``, ``LossOutput``, ``GenerationState``) is in
``lcm.interfaces``, re-exported here.

The MSE head regresses the next concept; a Two-Tower head runs its own denoiser cross-attending
to the trunk's outputs; a One-Tower head runs the trunk itself over clean and noisy concepts.
``start`` defaults to one pass of the trunk over the prompt (filling ``state.cache`` and
``state.hidden``), ``append`` to one cached trunk step.

A head whose trunk input is not the plain concept sequence (One-Tower) overrides ``start`` and
``append``; extra generation state (a denoiser's cache, a codebook state) goes in
``state.extra``. With ``state.uncached`` the session re-reads the whole context at every step
instead of calling ``append``. All concepts here are NORMALISED (see ``lcm.data.normalizer``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lcm.interfaces import Backbone, GenerationState, Head, LossOutput
from lcm.model.config import TransformerConfig
from lcm.model.transformer import KVCache

__all__ = ["Backbone", "GenerationState", "HeadModule", "LossOutput", "context_states", "last_real",
           "learned_positions", "next_concept_pairs"]


def context_states(backbone: Backbone, concepts: Tensor, mask: Tensor | None = None,
                   cache: KVCache | None = None) -> Tensor:
    """(B, T, d) trunk states of normalised ``concepts`` (B, T, D): what most heads read."""
    return backbone.contextualize(backbone.embed(concepts), mask, cache)


class HeadModule(nn.Module, Head):
    """Base class of every head plugin: an ``nn.Module`` that may own modules of its own.

    Constructed by ``lcm.model.lcm.build_model`` with its options (an instance of ``Config``),
    the trunk's configuration and the dimension D of the concept space.
    """

    def __init__(self, config: Any, trunk: TransformerConfig, concept_dim: int):
        nn.Module.__init__(self)
        Head.__init__(self, config)
        self.trunk_config = trunk
        self.concept_dim = concept_dim

    # ------------------------------------------------------------------ generation
    def start(self, backbone: Backbone, state: GenerationState) -> None:
        """Read the prompt in ``state.context``: fill ``state.cache`` and ``state.hidden``."""
        self.read_prompt(backbone, state)

    def read_prompt(self, backbone: Backbone, state: GenerationState) -> Tensor:
        """The default ``start``; returns the trunk states (B, S, d) of the whole prompt, for
        heads that keep more of them than the last one."""
        state.cache = backbone.new_cache(state.batch_size, capacity=state.context.shape[1] + 16)
        hidden = context_states(backbone, state.context, state.context_mask, state.cache)  # (B, S, d)
        state.hidden = last_real(hidden, state.context_mask)
        return hidden

    def append(self, backbone: Backbone, state: GenerationState, concepts: Tensor) -> None:
        """Commit ``concepts`` (B, D) as the next context position; update ``state.hidden``."""
        hidden = context_states(backbone, concepts[:, None], cache=state.cache)  # (B, 1, d)
        state.hidden = hidden[:, 0]

    def keep_rows(self, state: GenerationState, rows: Tensor) -> None:
        """Keep only the documents ``rows`` (indices) in the head's part of ``state`` (the
        session has already cut context, mask and generators): finished documents leave the
        batch. Default: the trunk's cache and ``state.hidden``; a head with batched
        ``state.extra`` extends this."""
        if state.cache is not None:
            state.cache.reorder(rows)
        if state.hidden is not None:
            state.hidden = state.hidden.index_select(0, rows)


def last_real(values: Tensor, mask: Tensor) -> Tensor:
    """(B, S, ...) -> (B, ...): the entry at each row's last True slot of ``mask`` (B, S)."""
    slots = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask, slots, -1).max(dim=1).values.clamp(min=0)  # (B,)
    return values[torch.arange(values.shape[0], device=values.device), last]


def next_concept_pairs(concepts: Tensor, mask: Tensor,
                       target_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Targets for next-concept prediction: ``(targets (B, T-1, D), valid (B, T-1))``.

    Position t predicts concept t+1; a pair counts only if both are real and, with a
    ``target_mask`` (B, T), concept t+1 is one to learn. Batches given to ``loss`` are
    right-padded, so this is the usual shift by one.
    """
    valid = mask[:, 1:] & mask[:, :-1]
    if target_mask is not None:
        valid = valid & target_mask[:, 1:]
    return concepts[:, 1:], valid


def learned_positions(mask: Tensor, target_mask: Tensor | None = None) -> Tensor:
    """(B, T) concepts a head that predicts each position in place (diffusion heads: position t
    denoises concept t from the context before it) is scored on: real ones, within
    ``target_mask`` when given."""
    return mask if target_mask is None else mask & target_mask
