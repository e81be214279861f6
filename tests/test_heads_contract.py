"""The contract every registered head fulfils — built-in, quantised and third-party alike.

Parametrised over ``get_registry().names("head")``, so a newly installed head plugin is
checked without touching this file (tests/_head_options.py gives options a head needs).
"""
from __future__ import annotations

import math

import pytest
import torch

from lcm.generate.loop import STOP_MAX_LENGTH, StopRules, generate
from lcm.generate.recompute import recomputing
from lcm.model.checkpoint import load_checkpoint, save_checkpoint
from lcm.registry import get_registry
from tests._head_fixtures import (SPACE, fit, rotation_task, seeded_loss,  # noqa: F401
                                  single_thread, toy_head_model)
from tests._model_fixtures import toy_normalizer

HEADS = get_registry().names("head")
RULES = StopRules(max_new_concepts=3, repetition_threshold=None)


@pytest.fixture(scope="module")
def task():
    return rotation_task(documents=96, length=10)


def prompts(task, lengths=(2, 4, 3)) -> list[torch.Tensor]:
    return [task.concepts[i, :n] for i, n in enumerate(lengths)]


def test_the_built_in_heads_are_registered():
    assert {"mse", "one_tower", "two_tower"} <= set(HEADS)


@pytest.mark.parametrize("name", HEADS)
def test_loss_is_a_finite_scalar_with_gradients(name, task, tmp_path):
    model = toy_head_model(name, tmp_path).train()
    output = model(task.concepts[:6], task.mask[:6])
    assert output.loss.dim() == 0 and torch.isfinite(output.loss)
    output.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", HEADS)
def test_loss_falls_on_a_synthetic_sequence_task(name, task, tmp_path):
    train, held_out = task.split(16)
    model = toy_head_model(name, tmp_path)
    before = seeded_loss(model, held_out)
    fit(model, train, steps=80)
    after = seeded_loss(model, held_out)
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("name", HEADS)
def test_generation_gives_one_concept_per_step_for_each_document(name, task, tmp_path):
    model = toy_head_model(name, tmp_path)
    continuations = generate(model, prompts(task), RULES, seed=0)
    assert len(continuations) == 3
    for c in continuations:
        assert c.concepts.shape == (3, SPACE.dim) and torch.isfinite(c.concepts).all()
        assert c.stop_reason == STOP_MAX_LENGTH


@pytest.mark.parametrize("name", HEADS)
def test_generation_is_reproducible_with_a_seed(name, task, tmp_path):
    model = toy_head_model(name, tmp_path)
    first = generate(model, prompts(task), RULES, seed=7)
    second = generate(model, prompts(task), RULES, seed=7)
    for a, b in zip(first, second):
        assert torch.equal(a.concepts, b.concepts)


@pytest.mark.parametrize("name", HEADS)
def test_cached_generation_equals_recomputing_the_context(name, task, tmp_path):
    model = toy_head_model(name, tmp_path)
    cached = generate(model, prompts(task), RULES, seed=3)
    with recomputing(model.head):
        recomputed = generate(model, prompts(task), RULES, seed=3)
    for a, b in zip(cached, recomputed):
        torch.testing.assert_close(a.concepts, b.concepts, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", HEADS)
def test_checkpoint_round_trip_gives_identical_outputs(name, task, tmp_path):
    model = toy_head_model(name, tmp_path, seed=1)
    fit(model, task, steps=3)  # move every trained weight away from its initial value
    save_checkpoint(tmp_path / "model", model, toy_normalizer(SPACE))
    loaded = load_checkpoint(tmp_path / "model", get_registry()).model
    assert math.isclose(seeded_loss(loaded, task), seeded_loss(model, task), rel_tol=1e-6)
    for a, b in zip(generate(model, prompts(task), RULES, seed=5),
                    generate(loaded, prompts(task), RULES, seed=5)):
        assert torch.equal(a.concepts, b.concepts)
