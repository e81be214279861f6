"""What a training run starts from besides its shards: pair framing and initial weights.

Supervised (instruction) fine-tuning reads shards of source/target pairs together with the
encoded framing sentences ``prepare`` stored beside them, and usually starts from a
pre-trained checkpoint (``model.init_from``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcm.data.instruction import CHECKPOINT_KEY, Framing
from lcm.data.normalizer import RobustScaler
from lcm.errors import ConceptSpaceMismatchError, UserError
from lcm.model.checkpoint import read_checkpoint_meta, read_weights
from lcm.spaces import read_space

log = logging.getLogger(__name__)


def training_framing(style: str, shards: str | Path) -> Framing | None:
    """The pairs' framing in supervised style (refused if the shards hold no pairs); None for
    pre-training."""
    if style != "supervised":
        return None
    framing = Framing.load(shards)
    if framing is None:
        raise UserError(f"train.style is supervised but {shards} holds no source/target pairs "
                        f"(no instruction.json): prepare them with a target_field")
    return framing


def instruction_extra(framing: Framing | None) -> dict[str, Any]:
    """What a checkpoint records so ``summarize`` prompts the model as it was fine-tuned."""
    return {} if framing is None else {CHECKPOINT_KEY: framing.format.to_meta()}


def load_initial_weights(model: Any, checkpoint: str | Path, normalizer: Any) -> None:
    """Copy a checkpoint's weights into ``model`` (same space, architecture and head)."""
    read_checkpoint_meta(checkpoint)  # refuses what is not a checkpoint
    space = read_space(checkpoint)
    if space != model.space:
        raise ConceptSpaceMismatchError(f"model.init_from {checkpoint} was trained in {space}, "
                                        f"the shards hold {model.space}")
    theirs = RobustScaler.load(checkpoint)
    if not (np.array_equal(theirs.center, normalizer.center)
            and np.array_equal(theirs.scale, normalizer.scale)):
        log.warning("model.init_from %s was trained with another normaliser than data.normalizer; "
                    "its inputs will be scaled differently", checkpoint)
    source = read_weights(checkpoint)
    target = model.state_dict()
    mismatched = sorted(k for k in target if k not in source or source[k].shape != target[k].shape)
    if mismatched or set(source) - set(target):
        raise UserError(f"model.init_from {checkpoint} does not fit this recipe's model/head "
                        f"(differs at {', '.join(mismatched[:3] or sorted(set(source) - set(target))[:3])}); "
                        f"use the same arch, overrides and head")
    with torch.no_grad():
        model.load_state_dict({k: v.to(target[k].dtype) for k, v in source.items()})
