"""Pre-training metrics of next-concept predictions, in the encoder's (de-normalised) space.

Definitions follow the paper (arXiv 2412.08821, §2.4.1) and, where the paper leaves a choice
open, the reference code (``lcm/evaluation/metrics``):

- ℓ2: ``||x̂_t - x_t||``, the prediction's distance to the true next concept.
- CA, contrastive accuracy: for one prediction, the share of distractors (the true concepts of
  the OTHER sequences of the batch) that lie farther from the prediction than the true concept
  does; 0.5 is chance. This is the reference's ``mse_constrative_accuracy``: a share over
  distractors per position, not "closer than all of them".
- CA in-document: the same share with the document's OTHER sentences as distractors (those of
  its window, context included). Other documents' concepts are far from any context, so a copy
  of the previous concept passes the first CA almost always; here the previous concept is a
  distractor at distance 0, so copying the context scores low.
- diversity: the mean pairwise cosine of several draws of one prediction (1: deterministic).
- PAR, paraphrasing: ``max_{m<t} cos(x̂_t, x_m)``, how close the prediction is to a concept
  already in the context; a model that merely restates its context scores near 1.
- round-trip ℓ2: ``||encode(decode(x̂_t)) - x̂_t||``, how far the prediction is from a vector
  the encoder can actually produce (the reference's ``round_trip_l2_distance`` compares with
  the vector that was decoded).
Every function returns one value per prediction, so callers average however they report.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from torch import Tensor


def l2_distances(predicted: "Tensor", target: "Tensor") -> "Tensor":
    """(N, D), (N, D) -> (N,) Euclidean distances."""
    return (predicted.double() - target.double()).norm(dim=-1)


def contrastive_accuracy(predicted: "Tensor", target: "Tensor", sequence: "Tensor") -> "Tensor":
    """(N, D) predictions, (N, D) true next concepts, (N,) sequence ids -> (N,) shares.

    A prediction with no distractor (every target comes from its own sequence) gets NaN.
    """
    predicted, target = predicted.double(), target.double()
    true_distance = (predicted - target).norm(dim=-1)  # (N,)
    distances = torch.cdist(predicted, target)  # (N, N): prediction i to target j
    distractor = sequence[None, :] != sequence[:, None]  # (N, N)
    farther = (distances > true_distance[:, None]) & distractor
    count = distractor.sum(dim=1)
    shares = farther.sum(dim=1).double() / count.clamp(min=1)
    return torch.where(count > 0, shares, torch.full_like(shares, float("nan")))


def in_document_accuracy(predicted: "Tensor", concepts: "Tensor") -> "Tensor":
    """Within one sequence: (T-1, D) predictions of positions 1..T-1, (T, D) true concepts
    -> (T-1,) for prediction t, the share of the sequence's concepts other than its target
    (position t+1) that lie farther from it than the target does."""
    predicted, concepts = predicted.double(), concepts.double()
    steps = predicted.shape[0]
    distances = torch.cdist(predicted, concepts)  # (T-1, T): prediction t to concept j
    targets = torch.arange(1, steps + 1)
    true_distance = distances[torch.arange(steps), targets]  # (T-1,)
    distractor = torch.ones_like(distances, dtype=torch.bool)
    distractor[torch.arange(steps), targets] = False
    farther = (distances > true_distance[:, None]) & distractor
    return farther.sum(dim=1).double() / distractor.sum(dim=1)


def draw_diversity(draws: "Tensor") -> "Tensor":
    """(K, N, D) K draws of N predictions -> (N,) mean cosine over the K(K-1)/2 pairs of draws."""
    unit = F.normalize(draws.double(), dim=-1)
    cosines = torch.einsum("knd,lnd->nkl", unit, unit)  # (N, K, K)
    pairs = torch.triu_indices(draws.shape[0], draws.shape[0], offset=1)
    return cosines[:, pairs[0], pairs[1]].mean(dim=1)


def paraphrase_scores(predicted: "Tensor", concepts: "Tensor") -> "Tensor":
    """Within one sequence: (T-1, D) predictions of positions 1..T-1, (T, D) true concepts
    -> (T-1,) the highest cosine of prediction t to any concept before position t."""
    cosines = F.normalize(predicted.double(), dim=-1) @ F.normalize(concepts.double(), dim=-1).T
    steps = predicted.shape[0]  # (T-1, T): row t-1 predicts position t and may see 0..t-1
    visible = torch.ones(steps, concepts.shape[0], dtype=torch.bool).tril()
    return cosines.masked_fill(~visible, float("-inf")).max(dim=1).values


def round_trip(predicted: "Tensor", decoder, encoder,
               language: str | None = None) -> tuple["Tensor", "Tensor", list[str]]:
    """(N, D) -> ((N,) ℓ2 distances, (N,) cosines, N texts): decode each prediction, re-encode
    the text, compare with the prediction; the decoded texts are returned for text metrics."""
    texts = decoder.decode(predicted.float(), language=language)
    reencoded = encoder.encode(texts).to(predicted.device).float()
    cosines = torch.nn.functional.cosine_similarity(reencoded, predicted.float(), dim=-1)
    return l2_distances(reencoded, predicted), cosines, texts