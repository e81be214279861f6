"""Options of the evaluations that recipes set; kept free of heavy imports, since the task
module (imported by ``lcm plugins list``) builds its schema from them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class PretrainingOptions:
    """How the held-out shards are read and scored (the recipe's ``pretraining`` section)."""

    batch_size: int = 16
    """Sequences per batch; also the pool of contrastive-accuracy distractors."""
    max_concepts: int = 128
    """Window length in concepts (capped at the model's max_seq_len); the reference wraps at 128."""
    max_documents: Optional[int] = None
    """Evaluate the first N documents in shard order; null = all."""
    max_decoded: int = 256
    """Predictions per system decoded for round-trip ℓ2 and MI (the first ones in order)."""
    diversity_draws: int = 8
    """Draws per position for the diversity metric, on the first ``max_decoded`` positions
    (a sampling head's teacher forcing runs this many times there); below 2: not measured."""
    seed: int = 0
    """Seeds heads that sample (diffusion, quantised)."""
    language: Optional[str] = None
    """Language asked of the decoder (where it supports several)."""
