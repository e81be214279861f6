"""Number options of the command line: a float option never takes NaN or infinity (``nan``,
``inf`` and ``1e400`` all parse as floats, and would flow into every figure computed from it)."""
from __future__ import annotations

import math
from typing import Any

import click

from lcm.errors import UserError


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that refuses NaN and infinity in one line (exit 2)."""

    name = "finite float range"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, float) or not math.isfinite(value):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = 0.0  # not a number at all: click's own message says so
            if not math.isfinite(number):
                raise UserError(f"{_option(param)}: {value} is not a finite number")
        return super().convert(value, param, ctx)


def finite(value: float, what: str) -> float:
    """``value``, refused in one line where it is NaN or infinite (e.g. a size times its unit)."""
    if not math.isfinite(value):
        raise UserError(f"{what}: {value} is not a finite number")
    return value


def _option(param: Any) -> str:
    return param.opts[0] if param is not None and getattr(param, "opts", None) else "value"
