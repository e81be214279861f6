"""JSON that lcm writes for people's tools (the ``--json`` summary, JSONL and report files):
always strict JSON. Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which strict
parsers (browsers, ``jq``, most languages) reject; a non-finite number is written as ``null``
instead, and the run notes how many were (it never passes silently)."""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Optional

Note = Callable[..., None]
"""A terminal's ``note(message, key=...)``."""


def dumps(value: Any, note: Optional[Note] = None, **options: Any) -> str:
    """``json.dumps`` with NaN/inf written as null, said through ``note`` (a terminal's)."""
    replaced = [0]
    text = json.dumps(_finite(value, replaced), allow_nan=False, **options)
    if replaced[0] and note is not None:
        note(f"{replaced[0]} NaN/inf number(s) written as null in JSON output",
             key="NaN/inf written as null")
    return text


def _finite(value: Any, replaced: list[int]) -> Any:
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0
                                     and getattr(value.dtype, "kind", "") == "f"):
        if not math.isfinite(float(value)):
            replaced[0] += 1
            return None
        return value if isinstance(value, float) else float(value)
    if isinstance(value, dict):
        return {key: _finite(item, replaced) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item, replaced) for item in value]
    return value
