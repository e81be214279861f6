"""Options of residual-quantiser fitting; torch-free so the ``fit_quantizer`` recipe schema
can embed them while listing plugins and validating recipes stays fast."""
from __future__ import annotations

from dataclasses import dataclass

from lcm.config import choice
from lcm.errors import UserError

INITS = ("kmeans++", "random")


@dataclass
class FitOptions:
    """How the codebooks are fitted."""

    num_codebooks: int = 8
    """K, the number of residual levels (the paper: 64)."""
    codebook_size: int = 256
    """C, the units per codebook (the paper: 8192)."""
    iterations: int = 10
    """Lloyd passes over the data per codebook."""
    init: str = choice("kmeans++", INITS)
    """Initial centroids: k-means++ (better; C sweeps of the init sample) or random points."""
    init_sample: int = 0
    """Residuals gathered from the start of the stream to initialise each codebook from
    (and to re-seed empty clusters); 0 = 16 * codebook_size."""
    seed: int = 0
    """Seeds initialisation and re-seeding: the same data and seed give the same codebooks."""
    device: str = "cpu"
    """Where the k-means arithmetic runs (cpu, cuda, cuda:1, ...)."""

    def check(self) -> "FitOptions":
        """Raise a UserError naming the first invalid option."""
        for name in ("num_codebooks", "codebook_size", "iterations"):
            if getattr(self, name) < 1:
                raise UserError(f"quantizer option {name}={getattr(self, name)} must be >= 1")
        if self.init not in INITS:
            raise UserError(f"quantizer option init={self.init!r} is not one of {', '.join(INITS)}")
        if self.init_sample < 0:
            raise UserError(f"quantizer option init_sample={self.init_sample} must be >= 0")
        return self
