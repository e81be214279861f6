"""The Large Concept Model: PreNet -> concept Transformer (trunk) -> a prediction head.

``forward(concepts, mask)`` returns the head's ``LossOutput``, so a DeepSpeed engine (or a plain
optimiser loop) trains any head the same way. ``build_model`` assembles a model from a named
architecture, a resolved ``head`` section and the concept space.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from lcm.components import ComponentSpec, plain
from lcm.interfaces import ConceptSpace
from lcm.model.config import TransformerConfig, get_arch
from lcm.model.heads import HeadModule, LossOutput
from lcm.model.transformer import ConceptTransformer, KVCache


class PreNet(nn.Module):
    """Linear map of (normalised) concepts into the model width, optionally scaled by sqrt(d)."""

    def __init__(self, concept_dim: int, config: TransformerConfig):
        super().__init__()
        self.linear = nn.Linear(concept_dim, config.model_dim, bias=config.prenet_bias)
        self.scale = math.sqrt(config.model_dim) if config.scale_embeddings else 1.0

    def forward(self, concepts: Tensor) -> Tensor:
        return self.linear(concepts) * self.scale  # (B, T, D) -> (B, T, d)


class ModelBackbone:
    """The model as a head sees it (``lcm.interfaces.Backbone``): PreNet and trunk, no more."""

    def __init__(self, prenet: PreNet, transformer: ConceptTransformer):
        self._prenet, self._transformer = prenet, transformer

    @property
    def config(self) -> TransformerConfig:
        return self._transformer.config

    def embed(self, concepts: Tensor) -> Tensor:
        return self._prenet(concepts)

    def contextualize(self, inputs: Tensor, mask: Tensor | None = None,
                      cache: KVCache | None = None, *, positions: Tensor | None = None,
                      attn_mask: Tensor | None = None) -> Tensor:
        return self._transformer(inputs, mask, cache, positions=positions, attn_mask=attn_mask)

    def new_cache(self, batch_size: int, capacity: int) -> KVCache:
        return self._transformer.new_cache(batch_size, capacity=capacity)


class ConceptModel(nn.Module):
    """PreNet, trunk and head, plus what a checkpoint records about them."""

    def __init__(self, config: TransformerConfig, head: HeadModule, space: ConceptSpace,
                 arch: str = "custom"):
        super().__init__()
        self.config = config
        self.space = space
        self.arch = arch
        self.prenet = PreNet(space.dim, config)
        self.trunk = ConceptTransformer(config)
        self.head = head
        self.backbone = ModelBackbone(self.prenet, self.trunk)

    def forward(self, concepts: Tensor, mask: Tensor | None = None,
                target_mask: Tensor | None = None,
                sentences: list[list[str]] | None = None) -> LossOutput:
        """Training loss of right-padded normalised ``concepts`` (B, T, D), ``mask`` (B, T);
        with ``target_mask`` (B, T) only the concepts it marks are learned (supervised style).
        ``sentences``: each row's text, one per concept, for a head that reads it."""
        if mask is None:
            mask = torch.ones(concepts.shape[:2], dtype=torch.bool, device=concepts.device)
        if not self.head.reads_sentences:
            return self.head.loss(self.backbone, concepts, mask, target_mask)
        if sentences is None:
            raise ValueError(f"head {self.head.name!r} learns from the sentences' text: pass "
                             "`sentences` with the concepts")
        return self.head.loss(self.backbone, concepts, mask, target_mask, sentences=sentences)

    def describe(self) -> dict[str, Any]:
        """What rebuilds this model whatever the code's defaults become: architecture, the
        resolved trunk config, every head option (diffusion or quantiser settings included)
        and the concept space."""
        return {"arch": self.arch, "transformer": dataclasses.asdict(self.config),
                "head": {"name": self.head.name, **plain(self.head.config),
                         **self.head.checkpoint_options()},
                "space": self.space.record()}


def build_head(head: ComponentSpec, config: TransformerConfig, concept_dim: int) -> HeadModule:
    """The head a resolved recipe section names, for this trunk and concept dimension."""
    if not issubclass(head.cls, HeadModule):
        raise TypeError(f"head {head.name!r} ({head.cls.__module__}) does not subclass "
                        "lcm.model.heads.HeadModule")
    return head.cls(head.options, config, concept_dim)


def build_model(arch: str, arch_overrides: Mapping[str, Any] | None, head: ComponentSpec,
                space: ConceptSpace) -> ConceptModel:
    """A freshly initialised model of architecture ``arch`` with the resolved ``head``."""
    config = get_arch(arch, arch_overrides)
    return ConceptModel(config, build_head(head, config, space.dim), space, arch=arch)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (works on the meta device, so huge archs can be counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
