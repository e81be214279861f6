"""Options of residual-quantiser fitting; torch-free so the ``fit_quantizer`` recipe schema
can embed them while listing plugins and validating recipes stays fast."""
from __future__ import annotations

from dataclasses import dataclass

from lcm.fields import bounded, choice

INITS = ("kmeans++", "random")


@dataclass
class FitOptions:
    """How the codebooks are fitted."""

    num_codebooks: int = bounded(8, ge=1)
    """K, the number of residual levels (the paper: 64)."""
    codebook_size: int = bounded(256, ge=1)
    """C, the units per codebook (the paper: 8192)."""
    iterations: int = bounded(10, ge=1)
    """Lloyd passes over the data per codebook."""
    init: str = choice("kmeans++", INITS)
    """Initial centroids: k-means++ (better; C sweeps of the init sample) or random points."""
    init_sample: int = bounded(0, ge=0)
    """Residuals gathered from the start of the stream to initialise each codebook from
    (and to re-seed empty clusters); 0 = 16 * codebook_size."""
    seed: int = 0
    """Seeds initialisation and re-seeding: the same data and seed give the same codebooks."""
    device: str = "cpu"
    """Where the k-means arithmetic runs (cpu, cuda, cuda:1, ...)."""
