"""The contract every registered head fulfils — built-in, quantised and third-party alike.

Parametrised over ``get_registry().names("head")``, so a newly installed head plugin is
checked without touching this file (tests/_head_options.py gives options a head needs).
"""
from __future__ import annotations

import math

import pytest
import torch

from lcm.errors import UserError
from lcm.generate.loop import STOP_END, STOP_MAX_LENGTH, StopRules, generate
from lcm.model.checkpoint import load_checkpoint, save_checkpoint
from lcm.registry import get_registry
from tests._head_fixtures import SPACE, fit, seeded_loss, toy_head_model
from tests._model_fixtures import toy_normalizer

HEADS = get_registry().names("head")
RULES = StopRules(max_new_concepts=3, repetition_threshold=None)

pytestmark = pytest.mark.usefixtures("single_thread")


def prompts(task, lengths=(2, 4, 3)) -> list[torch.Tensor]:
    return [task.concepts[i, :n] for i, n in enumerate(lengths)]


def test_the_built_in_heads_are_registered():
    assert {"mse", "one_tower", "two_tower"} <= set(HEADS)


@pytest.mark.parametrize("name", HEADS)
def test_loss_is_a_finite_scalar_with_gradients(name, task, tmp_path):
    model = toy_head_model(name, tmp_path).train()
    concepts, mask, sentences = task.rows(slice(0, 6))
    output = model(concepts, mask, sentences=sentences)
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
    recomputed = generate(model, prompts(task), RULES, seed=3, uncached=True)
    for a, b in zip(cached, recomputed):
        torch.testing.assert_close(a.concepts, b.concepts, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", HEADS)
def test_documents_that_stop_early_leave_the_batch_and_the_rest_continue_as_alone(
        name, task, tmp_path):
    """Document 0 stops at its first concept (the end concept is what it produces alone), so
    it leaves the batch; every document still gets what it gets alone (document i of a batch
    seeded s draws as document 0 seeded s + i)."""
    model = toy_head_model(name, tmp_path)
    docs, rules = prompts(task), StopRules(max_new_concepts=4, repetition_threshold=None)
    first = generate(model, docs[:1], rules, seed=3)[0].concepts[0]
    rules = StopRules(max_new_concepts=4, repetition_threshold=None, end_concept=first,
                      end_threshold=0.9999)
    batched = generate(model, docs, rules, seed=3)
    assert batched[0].stop_reason == STOP_END and len(batched[0].concepts) == 0
    assert [c.stop_reason for c in batched[1:]] == [STOP_MAX_LENGTH] * 2
    for i, got in enumerate(batched):
        alone = generate(model, docs[i:i + 1], rules, seed=3 + i)[0]
        assert alone.stop_reason == got.stop_reason
        torch.testing.assert_close(got.concepts, alone.concepts, rtol=1e-4, atol=1e-4)


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


@pytest.mark.parametrize("name", ["two_tower", "one_tower"])
def test_a_checkpoint_generates_the_same_after_every_default_changes(name, task, tmp_path,
                                                                     monkeypatch):
    """Checkpoints store every head option (diffusion settings included) and load from them,
    so a later change of the code's defaults does not change what a trained model generates;
    sampling options stay overridable at generation (issue 8 item 7)."""
    import dataclasses

    from lcm.components import resolve
    from lcm.diffusion.config import DiffusionConfig

    model = toy_head_model(name, tmp_path, seed=2)
    fit(model, task, steps=3)
    save_checkpoint(tmp_path / "model", model, toy_normalizer(SPACE))
    before = generate(model, prompts(task), RULES, seed=5)

    @dataclasses.dataclass
    class ChangedDiffusion(DiffusionConfig):
        train_steps: int = 50
        schedule: str = "linear"
        inference_steps: int = 7
        timestep_spacing: str = "leading"
        initial_noise_scale: float = 1.0
        guidance_scale: float = 1.5
        clip: float = 3.0

    head_cls = type(model.head)
    changed = dataclasses.make_dataclass("ChangedHeadConfig", [
        ("cfg_dropout", float, 0.5),
        ("diffusion", ChangedDiffusion, dataclasses.field(default_factory=ChangedDiffusion))],
        bases=(head_cls.Config,))
    monkeypatch.setattr(head_cls, "Config", changed)
    assert resolve(get_registry(), "head", {"name": name}).options.diffusion.inference_steps == 7

    loaded = load_checkpoint(tmp_path / "model", get_registry()).model
    trained_with = model.head.config.diffusion.inference_steps
    assert trained_with != 7 and loaded.head.config.diffusion.inference_steps == trained_with
    for a, b in zip(before, generate(loaded, prompts(task), RULES, seed=5)):
        assert torch.equal(a.concepts, b.concepts)

    faster = load_checkpoint(tmp_path / "model", get_registry(),
                             sampling={"diffusion": {"inference_steps": 5}}).model
    assert faster.head.config.diffusion.inference_steps == 5
    with pytest.raises(UserError, match="cfg_dropout cannot change at generation"):
        load_checkpoint(tmp_path / "model", get_registry(), sampling={"cfg_dropout": 0.1})
