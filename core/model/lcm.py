"""The Large Concept Model: PreNet -> concept Transformer (trunk) -> a prediction head.

``forward(concepts, mask)`` returns the head's ``LossOutput``, so a DeepSpeed engine (or a plain
optimiser loop) trains any head the same way. ``build_model`` assembles a model from a named
architecture, a recipe's ``head`` section and the concept space.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from lcm.interfaces import ConceptSpace
from lcm.model.config import TransformerConfig, get_arch, head_options
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


class ConceptModel(nn.Module):
    """PreNet, trunk and head, plus what a checkpoint records about them."""

    def __init__(self, config: TransformerConfig, head: HeadModule, space: ConceptSpace,
                 arch: str = "custom", head_spec: Mapping[str, Any] | None = None):
        super().__init__()
        self.config = config
        self.space = space
        self.arch = arch
        self.head_spec = dict(head_spec or {"name": head.name})
        self.prenet = PreNet(space.dim, config)
        self.trunk = ConceptTransformer(config)
        self.head = head

    def forward(self, concepts: Tensor, mask: Tensor | None = None,
                target_mask: Tensor | None = None) -> LossOutput:
        """Training loss of right-padded normalised ``concepts`` (B, T, D), ``mask`` (B, T);
        with ``target_mask`` (B, T) only the concepts it marks are learned (supervised style)."""
        if mask is None:
            mask = torch.ones(concepts.shape[:2], dtype=torch.bool, device=concepts.device)
        return self.head.loss(self, concepts, mask, target_mask)

    def contextualize(self, concepts: Tensor, mask: Tensor | None = None,
                      cache: KVCache | None = None) -> Tensor:
        """Trunk states (B, T, d) of normalised ``concepts`` (B, T, D), after ``cache``'s."""
        return self.trunk(self.prenet(concepts), mask, cache)

    def describe(self) -> dict[str, Any]:
        """What rebuilds this model: architecture, resolved trunk config, head spec, space."""
        return {"arch": self.arch, "transformer": dataclasses.asdict(self.config),
                "head": {**self.head_spec, **self.head.checkpoint_options()},
                "space": dataclasses.asdict(self.space)}


def build_head(head_spec: Mapping[str, Any], config: TransformerConfig, concept_dim: int,
               registry: Any = None) -> HeadModule:
    """Instantiate the head plugin a recipe section ``{name: ..., **options}`` names."""
    from lcm.config import component_options
    from lcm.registry import get_registry

    spec = dict(head_spec)
    info = (registry or get_registry()).get("head", str(spec.pop("name")))
    if not issubclass(info.cls, HeadModule):
        raise TypeError(f"head {info.name!r} ({info.module}) does not subclass lcm.model.heads.HeadModule")
    return info.cls(component_options(info.cls, spec), config, concept_dim)


def build_model(arch: str, arch_overrides: Mapping[str, Any] | None, head_spec: Mapping[str, Any],
                space: ConceptSpace, registry: Any = None) -> ConceptModel:
    """A freshly initialised model of architecture ``arch`` with the named head.

    Head options the architecture publishes (``lcm.model.config.head_options``) come first;
    the recipe's ``head_spec`` overrides them.
    """
    config = get_arch(arch, arch_overrides)
    head_spec = _plain(head_spec)
    head_spec = {**head_options(arch, str(head_spec.get("name"))), **head_spec}
    return model_from_config(config, head_spec, space, arch=arch, registry=registry)


def model_from_config(config: TransformerConfig, head_spec: Mapping[str, Any], space: ConceptSpace,
                      arch: str = "custom", registry: Any = None) -> ConceptModel:
    """A model from an already resolved trunk configuration (what checkpoints store)."""
    head_spec = _plain(head_spec)
    head = build_head(head_spec, config, space.dim, registry)
    return ConceptModel(config, head, space, arch=arch, head_spec=head_spec)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (works on the meta device, so huge archs can be counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _plain(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A recipe section (maybe an OmegaConf node or dataclass) as a plain JSON-able dict."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(spec, DictConfig):
        return OmegaConf.to_container(spec, resolve=True)
    if dataclasses.is_dataclass(spec):
        return dataclasses.asdict(spec)
    return dict(spec)
