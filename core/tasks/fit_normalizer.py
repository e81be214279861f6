"""The ``fit_normalizer`` task: fit the robust per-dimension scaler on vectors of a shard set.

It is saved as ``normalizer.json`` beside the shards (or in ``output``), where training and
generation look for it, and records the concept space of the vectors it was fitted on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lcm.data.normalizer import RobustScaler
from lcm.data.shards import Manifest, load_vectors
from lcm.fields import path
from lcm.interfaces import RunContext, Task
from lcm.spaces import write_space


@dataclass
class FitNormalizerConfig:
    shards: str = path(must_exist=True, space_source=True, help="shard directory (prepare's output)")
    output: Optional[str] = path(None, output="dir", help="directory for normalizer.json; "
                                                          "default: the shard directory")
    max_vectors: Optional[int] = 1_000_000
    """Fit on at most this many vectors, the first ones in shard order (the reference fits on
    about 1M sentences); null = all."""
    clip_quantile: Optional[float] = 1e-4
    """Clip normalised inputs at these extreme per-dimension quantiles; null = no clipping."""


class FitNormalizer(Task):
    name = "fit_normalizer"
    description = "Fit the robust per-dimension normaliser (median, IQR/1.349) on a shard set."
    Config = FitNormalizerConfig

    def run(self, recipe: FitNormalizerConfig, context: RunContext) -> Any:
        space = Manifest.read(recipe.shards).space
        vectors = load_vectors(recipe.shards, recipe.max_vectors)
        scaler = RobustScaler.fit(vectors, space, clip_quantile=recipe.clip_quantile)
        output = Path(recipe.output or recipe.shards)
        output.mkdir(parents=True, exist_ok=True)
        saved = scaler.save(output)
        write_space(output, space)  # so recipes can check the normaliser's space like shards'
        if scaler.fallback_dims:
            context.console.note(
                f"{scaler.fallback_dims} of {space.dim} dimensions have a collapsed robust scale "
                f"(almost always the same value); they use their standard deviation instead "
                f"(1.0 where that is ~0 too)", key="dimensions with a collapsed scale")
        context.console.outcome(
            f"fitted the robust normaliser on {len(vectors)} vectors of {space} to {saved}; "
            f"scale per dimension from {scaler.scale.min():.4g} to {scaler.scale.max():.4g}, "
            f"mean |center| {abs(scaler.center).mean():.4g}",
            {"task": "fit_normalizer", "vectors": len(vectors), "space": str(space),
             "output": str(saved), "scale_min": float(scaler.scale.min()),
             "scale_max": float(scaler.scale.max()), "fallback_dims": scaler.fallback_dims})
        return scaler
