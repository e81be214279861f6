"""Helpers shared by the model and generation tests: toy models built through the real factory."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lcm.data.normalizer import RobustScaler
from lcm.interfaces import ConceptSpace
from lcm.model.lcm import ConceptModel, build_model
from lcm.registry import get_registry
from lcm.tasks.train import resolve_head

TOY_SPACE = ConceptSpace("toy_space", 8)


def toy_model(seed: int = 0, space: ConceptSpace = TOY_SPACE, registry=None, **overrides) -> ConceptModel:
    """A `toy` architecture with the `mse` head, deterministic for ``seed``, in eval mode."""
    torch.manual_seed(seed)
    model = model_of("toy", overrides, {"name": "mse"}, space, registry=registry)
    return model.eval()


def toy_normalizer(space: ConceptSpace = TOY_SPACE, seed: int = 0) -> RobustScaler:
    rng = np.random.default_rng(seed)
    return RobustScaler.fit(rng.normal(0.5, 2.0, size=(256, space.dim)), space)


def model_of(arch: str, overrides: dict, head: dict, space: ConceptSpace,
             registry=None) -> ConceptModel:
    """``build_model`` with a head section as a recipe spells it (under the architecture's
    published head options, as the train task lays them)."""
    return build_model(arch, overrides, resolve_head(registry or get_registry(), arch, head), space)


def random_concepts(batch: int, length: int, dim: int = TOY_SPACE.dim, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, length, dim, generator=torch.Generator().manual_seed(seed))


@dataclass
class PaddedBatch:
    concepts: torch.Tensor
    mask: torch.Tensor


def pad(docs: list[torch.Tensor], side: str) -> PaddedBatch:
    from lcm.generate.loop import pad_prompts

    concepts, mask = pad_prompts(docs, side)
    return PaddedBatch(concepts, mask)
