"""The base of every prediction head, the trunk surface heads see, and the generation state.

A head owns the training objective and the way the next concept is produced from the trunk's
context. The MSE head regresses it; a Two-Tower head runs its own denoiser cross-attending to the
trunk's outputs; a One-Tower head runs the trunk itself over clean and noisy concepts. A head
never sees the model: it gets a ``Trunk`` (``embed``, ``contextualize``, ``new_cache``), and all
three fit this one protocol:

* ``loss(trunk, concepts, mask, target_mask=None)`` for training (``target_mask``: only those
  positions are learned, e.g. a summary after its source; see ``lcm.data.instruction``);
* generation, driven by one ``lcm.generate.session.DecodingSession``: ``start(trunk, state)``
  reads the prompt (default: one pass of the trunk, filling ``state.cache`` and
  ``state.hidden``), then per step ``next_concept(trunk, state)`` proposes a concept and
  ``append(trunk, state, concepts)`` commits the chosen ones (default: one cached trunk step).

A head whose trunk input is not the plain concept sequence (One-Tower) overrides ``start`` and
``append``; extra generation state (a denoiser's cache, a codebook state) goes in
``state.extra``. With ``state.uncached`` the session re-reads the whole context at every step
instead of calling ``append``. All concepts here are NORMALISED (see ``lcm.data.normalizer``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from lcm.interfaces import Head
from lcm.model.config import TransformerConfig
from lcm.model.randomness import RowGenerators
from lcm.model.transformer import KVCache


class Trunk(Protocol):
    """What a head sees of the model: the concept Transformer and the PreNet that feeds it."""

    config: TransformerConfig

    def embed(self, concepts: Tensor) -> Tensor:
        """(B, T, D) normalised concepts -> (B, T, d) trunk inputs (the PreNet)."""

    def contextualize(self, inputs: Tensor, mask: Tensor | None = None,
                      cache: KVCache | None = None, *, positions: Tensor | None = None,
                      attn_mask: Tensor | None = None) -> Tensor:
        """(B, T, d) trunk inputs -> (B, T, d) states, causally, after ``cache``'s positions
        (which it extends). ``mask`` (B, T): real inputs; ``positions`` (B, T) and ``attn_mask``
        (B, T, S) replace the default position count and causal mask (One-Tower's interleaving)."""

    def new_cache(self, batch_size: int, capacity: int) -> KVCache:
        """An empty KV cache for ``batch_size`` sequences."""


def context_states(trunk: Trunk, concepts: Tensor, mask: Tensor | None = None,
                   cache: KVCache | None = None) -> Tensor:
    """(B, T, d) trunk states of normalised ``concepts`` (B, T, D): what most heads read."""
    return trunk.contextualize(trunk.embed(concepts), mask, cache)


@dataclass
class LossOutput:
    """A training loss and the figures worth logging beside it."""

    loss: Tensor
    """Scalar to back-propagate."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Detached figures (e.g. ``mse``, ``l2``) for logs."""


@dataclass
class GenerationState:
    """Everything a head may read or update while continuing a batch of documents."""

    context: Tensor
    """(B, S, D) normalised concepts so far: the prompt, then the generated ones."""
    context_mask: Tensor
    """(B, S) bool, True where ``context`` holds a real concept (False: padding)."""
    cache: KVCache | None = None
    """The trunk's keys/values for ``context`` (filled by ``start``)."""
    hidden: Tensor | None = None
    """(B, d) trunk output at each document's last real concept: what predicts the next one."""
    generators: RowGenerators | None = None
    """Randomness of heads that sample, one generator per document (seeded by the caller)."""
    step: int = 0
    """Number of concepts generated so far."""
    extra: Any = None
    """Head-owned state (a denoiser's cache, codebook choices, ...)."""
    memo: dict = field(default_factory=dict)
    """What a head computes once per generation and reuses at every concept (a diffusion
    head's per-timestep conditioning); lives and dies with the session."""
    uncached: bool = False
    """Recompute instead of reusing: the session re-reads the context at every step, and a head
    with faster paths of its own (a diffusion head's denoiser caches) does not take them."""

    @property
    def batch_size(self) -> int:
        return self.context.shape[0]


class HeadModule(nn.Module, Head):
    """Base class of every head plugin: an ``nn.Module`` that may own modules of its own.

    Constructed by ``lcm.model.lcm.build_model`` with its options (an instance of ``Config``),
    the trunk's configuration and the dimension D of the concept space.
    """

    sampling_options: ClassVar[tuple[str, ...]] = ()
    """Options (dotted paths) a generating recipe may change in a trained model: how the next
    concept is drawn, never what the weights compute (see ``load_checkpoint``'s ``sampling``)."""

    reads_sentences: ClassVar[bool] = False
    """True for a head whose ``loss`` also takes ``sentences`` (each row's text, one per
    concept): the training data path then carries the text, which other heads never pay for."""

    def __init__(self, config: Any, trunk: TransformerConfig, concept_dim: int):
        nn.Module.__init__(self)
        Head.__init__(self, config)
        self.trunk_config = trunk
        self.concept_dim = concept_dim

    def checkpoint_options(self) -> dict[str, Any]:
        """Options to record in a checkpoint beside the recipe's, so that loading rebuilds this
        head from the checkpoint alone (e.g. the shapes of codebooks held in the weights, so
        the quantizer directory they came from is not needed). Default: none."""
        return {}

    def bind_normalizer(self, normalizer: Any) -> None:
        """Called wherever the model meets its normaliser (training, loading a checkpoint), for
        a head that needs concepts in the encoder's own space (one that learns through a
        decoder). Default: nothing; heads work on normalised concepts."""

    def trained_through(self) -> dict[str, str] | None:
        """The decoder weights this head learned through (``TokenLikelihood.weights_identity``),
        which generation must decode with; None: any decoder of the space."""
        return None

    # ------------------------------------------------------------------ training
    def loss(self, trunk: Trunk, concepts: Tensor, mask: Tensor,
             target_mask: Tensor | None = None) -> LossOutput:
        """Training loss on normalised ``concepts`` (B, T, D); ``mask`` (B, T) marks real ones.

        ``target_mask`` (B, T): when given, only the concepts it marks are predicted (and
        scored); the others are context only. Use ``next_concept_pairs`` / ``learned_positions``.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ generation
    def start(self, trunk: Trunk, state: GenerationState) -> None:
        """Read the prompt in ``state.context``: fill ``state.cache`` and ``state.hidden``."""
        self.read_prompt(trunk, state)

    def read_prompt(self, trunk: Trunk, state: GenerationState) -> Tensor:
        """The default ``start``; returns the trunk states (B, S, d) of the whole prompt, for
        heads that keep more of them than the last one."""
        state.cache = trunk.new_cache(state.batch_size, capacity=state.context.shape[1] + 16)
        hidden = context_states(trunk, state.context, state.context_mask, state.cache)  # (B, S, d)
        state.hidden = last_real(hidden, state.context_mask)
        return hidden

    def next_concept(self, trunk: Trunk, state: GenerationState) -> Tensor:
        """The next normalised concept of each document, (B, D)."""
        raise NotImplementedError

    def append(self, trunk: Trunk, state: GenerationState, concepts: Tensor) -> None:
        """Commit ``concepts`` (B, D) as the next context position; update ``state.hidden``."""
        hidden = context_states(trunk, concepts[:, None], cache=state.cache)  # (B, 1, d)
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
