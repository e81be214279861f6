"""Checks of a training run's inputs that need no torch: used by recipe validation and training.

The shards and the normaliser must live in one concept space, and the shard set must hold
something to train on; both are refused before any model is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lcm.data.normalizer import RobustScaler
from lcm.data.shards import Manifest, shard_paths
from lcm.errors import ConceptSpaceMismatchError, UserError
from lcm.interfaces import ConceptSpace


@dataclass
class TrainingInputs:
    space: ConceptSpace
    normalizer: RobustScaler
    manifest: Manifest


def check_inputs(shards: str | Path, normalizer: str | Path) -> TrainingInputs:
    """Read the manifest and normaliser; refuse mixed spaces and empty shard sets."""
    manifest = Manifest.read(shards)
    if not manifest.shards or manifest.documents == 0:
        raise UserError(f"{shards}: the shard set holds no documents (manifest lists "
                        f"{len(manifest.shards)} shards); run the prepare task on a corpus first")
    shard_paths(shards)  # every listed shard is on disk
    scaler = RobustScaler.load(normalizer)
    if scaler.space != manifest.space:
        raise ConceptSpaceMismatchError(
            f"the shards at {shards} hold {manifest.space} vectors but the normalizer at "
            f"{normalizer} was fitted in {scaler.space}; fit a normalizer on these shards")
    return TrainingInputs(manifest.space, scaler, manifest)
