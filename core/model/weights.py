"""Reading a safetensors weights file, for every model lcm loads: a missing, truncated or
malformed file, or one holding NaN/inf, is one line naming the file (exit 2), never a raw
library error or a model that silently generates garbage."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from lcm.errors import InputFileError


def read_safetensors(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """The tensors of ``path`` by name (safetensors: nothing is unpickled), all finite."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "weights file is missing")
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InputFileError(path, f"unreadable weights: {_first_line(exc)}") from None
    check_finite(tensors, path)
    return tensors


def check_finite(tensors: dict[str, Any], path: str | Path) -> None:
    """Refuse weights holding NaN/inf (a diverged run, or a damaged file)."""
    bad = nonfinite_tensors(tensors)
    if bad:
        raise InputFileError(path, f"{sum(bad.values())} NaN/inf value(s) in {len(bad)} "
                                   f"tensor(s) (first: {next(iter(bad))}); the model diverged "
                                   f"or the file is damaged")


def nonfinite_tensors(state: Mapping[str, Any]) -> dict[str, int]:
    """The floating-point tensors of ``state`` holding NaN/inf, with how many values each."""
    counts = {}
    for name, tensor in state.items():
        if tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                counts[name] = bad
    return counts


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
