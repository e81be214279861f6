"""Tiny fitted quantizers and a synthetic concept task for the quantised heads' tests.

``fit_tiny_quantizer`` writes what the fit_quantizer task writes (codebooks, quantizer.json,
concept_space.json) through the same library calls, in well under a second.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lcm.spaces import write_space
from lcm.interfaces import ConceptSpace
from lcm.quantize.options import FitOptions
from lcm.quantize.rvq import ResidualQuantizer, chunked, fit_residual_quantizer


def fit_tiny_quantizer(directory: Path, space: ConceptSpace, num_codebooks: int = 3,
                       codebook_size: int = 8, seed: int = 0, vectors: int = 400) -> Path:
    """Fit RVQ codebooks on random normal vectors of ``space`` and save them to ``directory``."""
    gen = torch.Generator().manual_seed(seed)
    points = torch.randn(vectors, space.dim, generator=gen)
    options = FitOptions(num_codebooks=num_codebooks, codebook_size=codebook_size, iterations=3,
                         init="random", seed=seed)
    quantizer = fit_residual_quantizer(chunked(points, 128), options, space, progress=False)
    quantizer.save(directory)
    write_space(directory, space)
    return Path(directory)


@dataclass
class CodeTask:
    """Documents whose concepts are codebook points and whose next concept is a function of
    the current one: each level's code moves by a fixed per-level step (mod C)."""

    concepts: torch.Tensor  # (B, T, D) normalised concepts
    codes: torch.Tensor  # (B, T, K) the codes they were decoded from


def code_task(quantizer: ResidualQuantizer, documents: int, length: int, seed: int = 0) -> CodeTask:
    gen = torch.Generator().manual_seed(seed)
    levels, size = quantizer.num_codebooks, quantizer.codebook_size
    steps = torch.arange(1, levels + 1)  # level k moves by k+1 units per position
    start = torch.randint(size, (documents, 1, levels), generator=gen)
    codes = (start + torch.arange(length)[None, :, None] * steps) % size  # (B, T, K)
    concepts = quantizer.decode(codes.reshape(-1, levels)).reshape(documents, length, -1)
    return CodeTask(concepts, codes)


@dataclass
class Scores:
    """Mean next-concept l2 and contrastive accuracy of one predictor on held-out documents."""

    l2: float
    ca: float


def score(predicted: torch.Tensor, concepts: torch.Tensor, mask: torch.Tensor) -> Scores:
    """Score (B, T-1, D) predictions of positions 1..T-1 of ``concepts`` (B, T, D)."""
    from lcm.evaluate.concept_metrics import contrastive_accuracy, l2_distances
    from lcm.model.heads import next_concept_pairs

    targets, valid = next_concept_pairs(concepts, mask)
    sequence = torch.arange(concepts.shape[0])[:, None].expand_as(valid)
    l2 = l2_distances(predicted[valid], targets[valid])
    ca = contrastive_accuracy(predicted[valid], targets[valid], sequence[valid])
    return Scores(float(l2.mean()), float(ca.nanmean()))


def head_scores(model, concepts: torch.Tensor, mask: torch.Tensor, seed: int = 0) -> Scores:
    """The head's teacher-forced predictions (the evaluate task's protocol), scored."""
    from lcm.evaluate.pretraining import teacher_forced

    predicted = teacher_forced(model, concepts, mask, seed)
    return score(predicted, concepts, mask)


def uninformed_scores(train: torch.Tensor, concepts: torch.Tensor, mask: torch.Tensor) -> Scores:
    """Always the mean of the training concepts ``train`` (N, D), whatever the context."""
    mean = train.mean(0)
    return score(mean.expand(concepts.shape[0], concepts.shape[1] - 1, -1), concepts, mask)
