"""The training recipe a plan is made for: a ``train`` recipe, or a pipeline's (last) train step.

A plan is made before the data exists, so the recipe's inputs (shards, normaliser, init_from)
may be missing; every other problem is refused as ``lcm run`` would refuse it.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from lcm.config import load_recipe, typed_config, validate_recipe
from lcm.errors import RecipeError, UserError
from lcm.spaces import read_space
from lcm.train.options import TrainRecipe

if TYPE_CHECKING:
    from lcm.registry import Registry


def train_body(source: str | Path, overrides: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The train task's section of the recipe, overrides applied and interpolations resolved."""
    container = OmegaConf.to_container(load_recipe(source, overrides), resolve=True)
    if container.get("task") == "train":
        return container
    steps = [s for s in container.get("steps") or [] if isinstance(s, dict) and s.get("task") == "train"]
    if container.get("task") != "pipeline" or not steps:
        raise UserError(f"{source}: lcm plan needs a train recipe or a pipeline with a train step, "
                        f"got task {container.get('task')!r}")
    return steps[-1]


def load_train_recipe(source: str | Path, overrides: tuple[str, ...] | list[str],
                      registry: "Registry") -> TrainRecipe:
    """The typed train recipe (head resolved), its data inputs allowed not to exist yet."""
    body = train_body(source, overrides)
    data, model = body.get("data") or {}, body.get("model") or {}
    planned = {str(Path(str(v)).resolve()) for v in (data.get("shards"), data.get("normalizer"),
                                       model.get("init_from")) if v}
    result = validate_recipe(OmegaConf.create(body), registry, str(source), planned)
    if result.problems:
        raise RecipeError(str(source), result.problems)
    return typed_config(registry.get("task", "train").cls, body, registry)


def concept_dim(recipe: TrainRecipe, default: int) -> int:
    """The dimension of the shards' concept space where they exist, else ``default``."""
    space = read_space(recipe.data.shards) if Path(recipe.data.shards).exists() else None
    return space.dim if space else default
