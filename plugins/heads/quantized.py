"""What the two Quant-LCM heads (``quant_d``, ``quant_c``) share: frozen RVQ codebooks and a
level-conditioned network that walks them coarse to fine.

The next concept x is described by its residual codes c_0..c_{K-1} (``lcm.quantize.rvq``).
Level k is predicted from the trunk state h AND from what the coarser levels already chose,
summarised by their partial reconstruction p_k = e_0[c_0] + ... + e_{k-1}[c_{k-1}]:

    u_k = h + W_in p_k + level_k          (level_k: a learned embedding of k)
    q_k = W_out(MLP(u_k))                 (MLP: ``mlp_layers`` residual SwiGLU blocks, shared)

q_k is a vector of the concept space: ``quant_c`` regresses it onto the residual x - p_k and
snaps it to the nearest codeword; ``quant_d`` scores the codewords of level k by their distance
to it (a softmax over the C units). Why this shape rather than an autoregressive stack or a
(d x C) output layer per level: conditioning through the partial reconstruction costs the same
at K=64 as at K=4, all levels of a position train in one batched pass (teacher forcing), and
scoring against the frozen codewords keeps the head's size independent of C (a per-level
output layer would be K x d x C = 1.07B parameters at the paper's 64 x 8192 and d=2048).

The codebooks are buffers: frozen, moved and saved with the model. A checkpoint records their
shape (``stored_codebooks``), so loading it rebuilds the head without the quantizer directory.
Concepts are NORMALISED, like the space the quantizer was fitted in (fit_quantizer stores the
normaliser it used beside the codebooks; train with the same one).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from lcm.errors import ConceptSpaceMismatchError, InputFileError, UserError
from lcm.fields import path
from lcm.model.heads import (
    GenerationState,
    HeadModule,
    LossOutput,
    context_states,
    next_concept_pairs,
)
from lcm.model.randomness import RowGenerators
from lcm.model.transformer import RMSNorm, SwiGLU
from lcm.quantize.rvq import ResidualQuantizer


@dataclass
class QuantHeadConfig:
    quantizer: str = path(must_exist=True, space_source=True,
                          help="directory written by the fit_quantizer task (its codebooks)")
    num_codebooks: Optional[int] = None
    """Use the first K codebooks of the quantizer (coarse to fine); None: all of them."""
    mlp_layers: int = 2
    """Residual SwiGLU blocks of the level network (shared by all levels)."""
    mlp_dim: Optional[int] = None
    """Inner width of those blocks; None: the trunk's ffn_inner_dim."""
    stored_codebooks: Optional[list[int]] = None
    """[K, C] of the codebooks held in a checkpoint's weights. Written by checkpoints, not by
    hand: with it the head takes its codebooks from the weights and never reads ``quantizer``."""


def load_codebooks(directory: str, concept_dim: int, levels: Optional[int]) -> Tensor:
    """The first ``levels`` codebooks (K, C, D) of a fit_quantizer output, checked against the
    model's concept dimension."""
    if not Path(directory).is_dir():
        raise InputFileError(directory, "quantizer directory not found (run the fit_quantizer task "
                                        "and pass its output as the head's `quantizer`)")
    quantizer = ResidualQuantizer.load(directory)
    if quantizer.space is None:
        raise InputFileError(directory, "the quantizer does not record its concept space")
    if quantizer.dim != concept_dim:
        raise ConceptSpaceMismatchError(
            f"the quantizer {directory} was fitted in {quantizer.space}, but the model's concepts "
            f"are {concept_dim}-d")
    if levels is not None and not 1 <= levels <= quantizer.num_codebooks:
        raise UserError(f"head option num_codebooks={levels}: the quantizer {directory} has "
                        f"{quantizer.num_codebooks} codebooks")
    return quantizer.codebooks[: levels or quantizer.num_codebooks].clone()


class FeedForwardBlock(nn.Module):
    """x + SwiGLU(RMSNorm(x)): the pre-norm feed-forward block of the trunk, without attention."""

    def __init__(self, dim: int, inner_dim: int):
        super().__init__()
        self.norm = RMSNorm(dim)
        self.ffn = SwiGLU(dim, inner_dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.ffn(self.norm(x))


class LevelNetwork(nn.Module):
    """q_k = W_out(MLP(h + W_in p_k + level_k)): a concept-space vector per codebook level."""

    def __init__(self, model_dim: int, concept_dim: int, levels: int, inner_dim: int, layers: int):
        super().__init__()
        self.partial_in = nn.Linear(concept_dim, model_dim)
        self.level_embedding = nn.Embedding(levels, model_dim)
        self.blocks = nn.ModuleList(FeedForwardBlock(model_dim, inner_dim) for _ in range(layers))
        self.norm = RMSNorm(model_dim)
        self.out = nn.Linear(model_dim, concept_dim)

    def forward(self, hidden: Tensor, partial: Tensor, levels: Tensor) -> Tensor:
        """hidden (..., d), partial (..., D), levels (...) long -> (..., D)."""
        x = hidden + self.partial_in(partial.to(hidden.dtype)) + self.level_embedding(levels)
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(x))


class QuantizedHead(HeadModule):
    """Codebooks, the level network, teacher forcing and level-by-level generation.

    Subclasses define ``level_loss`` (training on the level network's outputs) and ``choose``
    (the code of one level at generation).
    """

    Config = QuantHeadConfig

    def __init__(self, config, trunk, concept_dim):
        super().__init__(config, trunk, concept_dim)
        if config.stored_codebooks is not None:
            levels, size = (int(n) for n in config.stored_codebooks)
            codebooks = torch.full((levels, size, concept_dim), float("nan"))
            self._codebooks_loaded = False  # the checkpoint's weights will fill them
        else:
            codebooks = load_codebooks(config.quantizer, concept_dim, config.num_codebooks)
            self._codebooks_loaded = True
        self.register_buffer("codebooks", codebooks)  # (K, C, D), frozen
        if config.mlp_layers < 0:
            raise UserError(f"head option mlp_layers={config.mlp_layers} must be >= 0")
        self.level_network = LevelNetwork(trunk.model_dim, concept_dim, self.num_codebooks,
                                   config.mlp_dim or trunk.ffn_inner_dim, config.mlp_layers)

    @property
    def num_codebooks(self) -> int:
        return self.codebooks.shape[0]

    @property
    def codebook_size(self) -> int:
        return self.codebooks.shape[1]

    def checkpoint_options(self) -> dict[str, Any]:
        return {"stored_codebooks": [self.num_codebooks, self.codebook_size]}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "codebooks" in state_dict:
            self._codebooks_loaded = True

    def _check_codebooks(self) -> None:
        if not self._codebooks_loaded:
            raise RuntimeError(f"head {self.name!r} was built from a checkpoint description "
                               "(stored_codebooks) but its codebooks were never loaded")

    # ------------------------------------------------------------------ training
    def loss(self, backbone, concepts, mask, target_mask=None):
        self._check_codebooks()
        hidden = context_states(backbone, concepts, mask)[:, :-1]  # (B, T-1, d)
        targets, valid = next_concept_pairs(concepts, mask, target_mask)
        hidden, targets = hidden[valid], targets[valid].float()  # (N, d), (N, D): real pairs only
        with torch.no_grad():
            codes = self.encode(targets)  # (N, K)
            chosen = self.codewords(codes)  # (N, K, D)
            partial = chosen.cumsum(dim=1) - chosen  # (N, K, D): the coarser levels' sum
        level_ids = torch.arange(self.num_codebooks, device=hidden.device)
        queries = self.level_network(hidden[:, None], partial, level_ids)  # (N, K, D)
        loss, metrics = self.level_loss(queries.float(), codes, partial, targets)
        return LossOutput(loss, {**metrics, "concepts": float(valid.sum())})

    def level_loss(self, queries: Tensor, codes: Tensor, partial: Tensor,
                   targets: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Loss of the level outputs ``queries`` (N, K, D) given the true ``codes`` (N, K),
        their partial reconstructions ``partial`` (N, K, D) and the ``targets`` (N, D)."""
        raise NotImplementedError

    def encode(self, concepts: Tensor) -> Tensor:
        """Greedy residual codes (N, K) of normalised concepts (N, D)."""
        return ResidualQuantizer(self.codebooks.float()).encode(concepts)

    def codewords(self, codes: Tensor) -> Tensor:
        """(N, K) codes -> (N, K, D) the chosen codeword of every level."""
        levels = torch.arange(codes.shape[1], device=codes.device)
        return self.codebooks[levels, codes].float()

    # ------------------------------------------------------------------ generation
    def generation_levels(self) -> int:
        """How many codebooks generation walks (all of them unless a subclass says fewer)."""
        return self.num_codebooks

    def next_concept(self, backbone, state: GenerationState) -> Tensor:
        """Walk the codebooks, choosing one code per level; ``state.extra`` keeps the codes."""
        self._check_codebooks()
        hidden = state.hidden  # (B, d)
        partial = hidden.new_zeros(hidden.shape[0], self.concept_dim, dtype=torch.float32)
        codes = []
        for level in range(self.generation_levels()):
            level_ids = torch.full((hidden.shape[0],), level, device=hidden.device)
            query = self.level_network(hidden, partial, level_ids).float()  # (B, D)
            codes.append(self.choose(level, query, state.generators))  # (B,)
            partial = partial + self.codebooks[level, codes[-1]].float()
        state.extra = torch.stack(codes, dim=1)  # (B, levels): the codes of this concept
        return partial.to(hidden.dtype)

    def choose(self, level: int, query: Tensor, generators: RowGenerators | None) -> Tensor:
        """The code (B,) of ``level`` given its level output ``query`` (B, D)."""
        raise NotImplementedError
