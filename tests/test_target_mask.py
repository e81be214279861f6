"""Supervised (instruction) training scores only the target concepts, for every head.

A pair is laid out ``source, target, end`` and the loss may only count predictions of the target
side. Concepts that are neither scored nor earlier than a scored one (here: a tail after the
target) cannot change the loss of a causal model that honours ``target_mask``; without the mask
they would, which shows the check can fail.
"""
from __future__ import annotations

import pytest
import torch

from lcm.model.heads import learned_positions, next_concept_pairs
from lcm.registry import get_registry
from tests._head_fixtures import toy_head_model

HEADS = get_registry().names("head")


def _loss(model, concepts, mask, target_mask=None, sentences=None) -> float:
    torch.manual_seed(0)  # diffusion noise and timesteps: the same draws for both calls
    with torch.no_grad():
        return float(model(concepts, mask, target_mask, sentences).loss)


@pytest.mark.parametrize("name", HEADS)
def test_concepts_outside_the_target_mask_do_not_change_the_loss(name, task, tmp_path):  # noqa: F811
    model = toy_head_model(name, tmp_path)
    concepts, mask = task.concepts[:8].clone(), torch.ones(8, task.concepts.shape[1], dtype=torch.bool)
    target = torch.zeros_like(mask)
    target[:, 3:6] = True  # a "summary" at 3..5 after a 3-concept "source"; 6.. is a tail
    changed = concepts.clone()
    changed[:, 6:] = torch.randn_like(changed[:, 6:]) * 3
    sentences = task.sentences[:8]
    changed_sentences = [row[:6] + ["green fox"] * (len(row) - 6) for row in sentences]
    assert _loss(model, concepts, mask, target, sentences) == pytest.approx(
        _loss(model, changed, mask, target, changed_sentences), rel=1e-5, abs=1e-6)
    assert _loss(model, concepts, mask, None, sentences) != pytest.approx(
        _loss(model, changed, mask, None, changed_sentences), rel=1e-3)


@pytest.mark.parametrize("name", HEADS)
def test_a_full_target_mask_is_plain_pretraining(name, task, tmp_path):  # noqa: F811
    model = toy_head_model(name, tmp_path)
    everything = torch.ones_like(task.mask[:8])
    concepts, mask, sentences = task.rows(slice(0, 8))
    assert _loss(model, concepts, mask, everything, sentences) == pytest.approx(
        _loss(model, concepts, mask, None, sentences), rel=1e-6)


def test_pairs_and_positions_respect_padding_and_targets():
    concepts = torch.randn(1, 5, 2)
    mask = torch.tensor([[True, True, True, True, False]])
    target = torch.tensor([[False, False, True, True, True]])
    _, valid = next_concept_pairs(concepts, mask, target)
    assert valid.tolist() == [[False, True, True, False]]  # predicts 2 and 3; 4 is padding
    assert learned_positions(mask, target).tolist() == [[False, False, True, True, False]]
