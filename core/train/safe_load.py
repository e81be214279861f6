"""DeepSpeed's checkpoint files read with ``torch.load(weights_only=True)``.

DeepSpeed's own loader unpickles with ``weights_only=False``: a crafted checkpoint handed to
``train.resume`` would run code. While resuming, the engine's checkpoint engine is swapped for
one that allows tensors, containers and the few DeepSpeed/torch globals that its files hold,
and refuses anything else with one line naming the file.
"""
from __future__ import annotations

import contextlib
import copy
import pickle
import re
from typing import Any, Iterator

import torch

from lcm.errors import InputFileError


def allowed_globals() -> list[Any]:
    """The non-tensor objects DeepSpeed 0.19 pickles into its checkpoints: ZeRO 1-2 optimizer
    states hold the stage, the loss scaler (dynamic under fp16) and fragment addresses."""
    # lazy: DeepSpeed must not load before init_distributed sets DS_ACCELERATOR
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [ZeroStageEnum, LossScaler, DynamicLossScaler, fragment_address]


def _weights_only_engine(base: type) -> type:
    class WeightsOnlyCheckpointEngine(base):
        def load(self, path: str, map_location: Any = None) -> Any:
            with torch.serialization.safe_globals(allowed_globals()):
                try:
                    return torch.load(path, map_location=map_location, weights_only=True)
                except pickle.UnpicklingError as exc:
                    found = re.search(r"GLOBAL (\S+)", str(exc))
                    what = found.group(1) if found else "something that is not a weight"
                    raise InputFileError(path, f"refusing to load: it holds {what}, which is not "
                                         "a weight and could run code when unpickled") from None

    return WeightsOnlyCheckpointEngine


@contextlib.contextmanager
def weights_only_loading(engine: Any) -> Iterator[None]:
    """Within the block, ``engine.load_checkpoint`` unpickles only weights and allowed globals."""
    original = engine.checkpoint_engine
    safe = copy.copy(original)
    safe.__class__ = _weights_only_engine(type(original))
    engine.checkpoint_engine = safe
    try:
        yield
    finally:
        engine.checkpoint_engine = original
