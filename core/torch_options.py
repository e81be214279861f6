"""What option values name in torch: precisions (fp32, fp16, bf16) and devices ("auto").

One place for both, so a checkpoint's stored dtype, a training precision and a component's
``dtype``/``device`` options mean the same everywhere.
"""
from __future__ import annotations

from typing import Any

import torch

from lcm.errors import UserError

PRECISIONS = ("fp32", "fp16", "bf16")


def torch_dtype(name: str) -> Any:
    """The torch dtype of a precision name."""
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def torch_device(name: str) -> Any:
    """The torch device of an option value; "auto" picks CUDA when there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"device {name!r} is not a torch device: {exc}") from None
