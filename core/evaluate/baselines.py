"""Extractive baselines that any summariser must beat: lead-k, random-k, and over the source's
own sentence vectors, centroid-k and TextRank-k.

All pick whole source sentences and keep them in source order. ``k`` is either fixed or, by
default, the number of sentences of the example's reference, so a baseline is never longer or
shorter than what the reference asks for (ROUGE favours longer outputs on recall).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def lead_k(sentences: Sequence[str], k: int) -> list[str]:
    """The first ``k`` sentences."""
    return list(sentences[:max(k, 0)])


def random_k(sentences: Sequence[str], k: int, seed: int, example_index: int) -> list[str]:
    """``k`` sentences drawn without replacement, in source order.

    The generator is seeded by ``(seed, example_index)``: the same file and seed give the same
    picks, and an example's picks do not depend on how many examples came before it.
    """
    k = min(max(k, 0), len(sentences))
    rng = np.random.default_rng([seed, example_index])
    chosen = sorted(rng.choice(len(sentences), size=k, replace=False).tolist())
    return [sentences[i] for i in chosen]


def centroid_k(vectors: "np.ndarray", k: int) -> list[int]:
    """Indices of the ``k`` sentences closest (cosine) to the document's mean direction."""
    return _top_k(centroid_scores(vectors), k)


def textrank_k(vectors: "np.ndarray", k: int, damping: float = 0.85) -> list[int]:
    """Indices of the ``k`` most central sentences: PageRank over the graph whose edges are the
    sentences' positive cosine similarities (TextRank / continuous LexRank)."""
    return _top_k(textrank_scores(vectors, damping), k)


def centroid_scores(vectors: "np.ndarray") -> "np.ndarray":
    """Each sentence's cosine to the document's mean direction."""
    unit = unit_rows(vectors)
    centre = unit.mean(axis=0)
    return unit @ (centre / max(float(np.linalg.norm(centre)), 1e-12))


def textrank_scores(vectors: "np.ndarray", damping: float = 0.85) -> "np.ndarray":
    """Each sentence's PageRank over the positive-cosine graph (sums to 1; 0 without edges)."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import networkx as nx

    unit = unit_rows(vectors)
    weights = np.clip(unit @ unit.T, 0.0, None)
    np.fill_diagonal(weights, 0.0)
    graph = nx.from_numpy_array(weights)
    rank = nx.pagerank(graph, alpha=damping, weight="weight") if graph.number_of_edges() else {}
    return np.array([rank.get(i, 0.0) for i in range(len(unit))])


def unit_rows(vectors: "np.ndarray") -> "np.ndarray":
    """``vectors`` (float64) with each row scaled to unit length."""
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


def _top_k(scores: "np.ndarray", k: int) -> list[int]:
    """The indices of the ``k`` best scores, in source order."""
    return sorted(np.argsort(-scores, kind="stable")[:max(k, 0)].tolist())
