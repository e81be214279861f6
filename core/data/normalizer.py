"""The robust per-dimension scaler of the LCM reference: center = median,
scale = IQR / 1.349 (the IQR of a unit normal), optionally clipping at extreme quantiles.

Concepts are normalised before the model sees them and de-normalised after it predicts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lcm.errors import DataIntegrityError, InputFileError
from lcm.interfaces import ConceptSpace

NORMALIZER_FILE = "normalizer.json"
_IQR_OF_UNIT_NORMAL = 1.349
_COLLAPSED = 1e-3
"""A robust scale below this fraction of the dimensions' median scale counts as collapsed."""


@dataclass
class RobustScaler:
    """Per-dimension affine map fitted on a sample of concept vectors."""

    center: np.ndarray  # [dim]
    scale: np.ndarray  # [dim]
    space: ConceptSpace
    clip_low: np.ndarray | None = None
    clip_high: np.ndarray | None = None

    fallback_dims: int = 0
    """Dimensions whose robust scale collapsed at fitting and use a fallback scale instead."""

    @classmethod
    def fit(cls, vectors: np.ndarray, space: ConceptSpace, clip_quantile: float | None = 1e-4,
            min_scale: float = 1e-6) -> "RobustScaler":
        """Fit on ``vectors``; a dimension whose IQR collapses (a sparse encoder's mostly-zero
        dimensions) would be blown up by 1/scale, so it takes its standard deviation instead
        (1.0 where that collapses too), and ``fallback_dims`` counts them."""
        x = np.asarray(vectors, dtype=np.float64)
        if not np.isfinite(x).all():
            raise DataIntegrityError("cannot fit a normaliser on NaN or inf vectors")
        q25, median, q75 = np.quantile(x, [0.25, 0.5, 0.75], axis=0)
        robust = (q75 - q25) / _IQR_OF_UNIT_NORMAL
        typical = float(np.median(robust[robust > 0])) if (robust > 0).any() else 1.0
        floor = max(min_scale, _COLLAPSED * typical)
        collapsed = robust < floor
        spread = x.std(axis=0)
        scale = np.where(collapsed, np.where(spread >= floor, spread, 1.0), robust)
        low = high = None
        if clip_quantile:
            low, high = np.quantile(x, [clip_quantile, 1 - clip_quantile], axis=0)
            low, high = low.astype(np.float32), high.astype(np.float32)
        return cls(median.astype(np.float32), scale.astype(np.float32), space, low, high,
                   int(collapsed.sum()))

    def normalize(self, x):  # works on numpy arrays and torch tensors alike
        if self.clip_low is not None:
            x = _clip(x, self.clip_low, self.clip_high)
        return (x - _like(self.center, x)) / _like(self.scale, x)

    def denormalize(self, x):
        return x * _like(self.scale, x) + _like(self.center, x)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / NORMALIZER_FILE
        data = {"kind": "robust", "space": self.space.record(),
                "center": self.center.tolist(), "scale": self.scale.tolist(),
                "clip_low": None if self.clip_low is None else self.clip_low.tolist(),
                "clip_high": None if self.clip_high is None else self.clip_high.tolist(),
                "fallback_dims": self.fallback_dims}
        path.write_text(json.dumps(data))
        return path

    @classmethod
    def load(cls, location: str | Path) -> "RobustScaler":
        path = Path(location)
        if path.is_dir():
            path = path / NORMALIZER_FILE
        if not path.is_file():
            raise InputFileError(path, "normalizer not found (run the fit_normalizer task first)")
        try:
            data = json.loads(path.read_text())
            arr = lambda k: None if data.get(k) is None else np.asarray(data[k], dtype=np.float32)
            scaler = cls(arr("center"), arr("scale"), ConceptSpace.from_record(data["space"]),
                         arr("clip_low"), arr("clip_high"), int(data.get("fallback_dims", 0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFileError(path, f"malformed normalizer: {exc}") from None
        problem = scaler.problem()
        if problem:
            raise InputFileError(path, f"unusable normalizer: {problem} (fit it again)")
        return scaler

    def problem(self) -> str | None:
        """Why this normaliser would turn vectors into garbage, or None."""
        for name in ("center", "scale", "clip_low", "clip_high"):
            values = getattr(self, name)
            if values is not None and values.shape != (self.space.dim,):
                return f"{name} has shape {values.shape}, not ({self.space.dim},)"
            if values is not None and not np.isfinite(values).all():
                return f"{name} holds {int((~np.isfinite(values)).sum())} NaN/inf value(s)"
        if (self.scale <= 0).any():
            return f"{int((self.scale <= 0).sum())} dimension(s) have a scale of zero or less"
        return None



def _like(values: np.ndarray, x):
    """``values`` as the same array type, dtype and device as ``x``."""
    if isinstance(x, np.ndarray):
        return values.astype(x.dtype, copy=False)
    return torch.as_tensor(values, dtype=x.dtype, device=x.device)


def _clip(x, low: np.ndarray, high: np.ndarray):
    if isinstance(x, np.ndarray):
        return np.clip(x, low, high)
    return torch.clamp(x, _like(low, x), _like(high, x))
