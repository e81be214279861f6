"""Extractive baselines that any summariser must beat: lead-k and random-k.

Both pick whole source sentences and keep them in source order. ``k`` is either fixed or, by
default, the number of sentences of the example's reference, so a baseline is never longer or
shorter than what the reference asks for (ROUGE favours longer outputs on recall).
"""
from __future__ import annotations

from typing import Sequence


def lead_k(sentences: Sequence[str], k: int) -> list[str]:
    """The first ``k`` sentences."""
    return list(sentences[:max(k, 0)])


def random_k(sentences: Sequence[str], k: int, seed: int, example_index: int) -> list[str]:
    """``k`` sentences drawn without replacement, in source order.

    The generator is seeded by ``(seed, example_index)``: the same file and seed give the same
    picks, and an example's picks do not depend on how many examples came before it.
    """
    import numpy as np

    k = min(max(k, 0), len(sentences))
    rng = np.random.default_rng([seed, example_index])
    chosen = sorted(rng.choice(len(sentences), size=k, replace=False).tolist())
    return [sentences[i] for i in chosen]
