"""What is particular to the diffusion heads: AdaLN identity at init, who sees what (the
Two-Tower's shifted cross-attention, the One-Tower's interleaved mask), batched guidance, and
that a diffusion head beats a context-blind predictor on a task with a learnable next concept.
"""
from __future__ import annotations

import pytest
import torch

from lcm.evaluate.concept_metrics import contrastive_accuracy, l2_distances
from lcm.evaluate.pretraining import teacher_forced
from lcm.errors import UserError
from lcm.interfaces import ConceptSpace
from lcm.model.config import head_options
from lcm.generate.session import DecodingSession
from lcm.model.randomness import RowGenerators
from lcm.model.heads import GenerationState
from lcm.model.lcm import count_parameters
from lcm.plugins.heads.one_tower import interleaved_mask
from lcm.plugins.heads.two_tower import shifted_causal_mask
from lcm.registry import get_registry
from lcm.model.heads import context_states
from tests._head_fixtures import SPACE, fit, rotation_task, toy_head_model
from tests._model_fixtures import model_of

GUIDED = {"diffusion": {"inference_steps": 5, "guidance_scale": 2.5, "guidance_rescale": 0.5}}

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def task():
    return rotation_task(documents=4, length=6, seed=1)


def trained_a_little(model, steps: int = 5):
    """Move the zero-initialised modulation away from zero so every path carries signal."""
    fit(model, rotation_task(documents=32, length=6, seed=2), steps=steps, lr=1e-2)
    return model


# --------------------------------------------------------------------------- Two-Tower

@pytest.mark.parametrize("arch, head, published", [
    ("two_tower_1_6b", "two_tower", 1_635_101_696),  # the reference's docstrings
    ("two_tower_7b", "two_tower", 6_930_781_696),
    ("one_tower_1_6b", "one_tower", 1_600_000_000),  # the paper's "1.6B" (no exact figure)
])
def test_published_sizes_have_their_parameter_counts_within_one_percent(arch, head, published):
    with torch.device("meta"):
        model = model_of(arch, {}, {"name": head}, ConceptSpace("sonar", 1024))
    count = count_parameters(model)
    assert abs(count - published) / published < 0.01, count


def test_published_two_tower_sizes_carry_their_denoiser_depth():
    assert head_options("two_tower_1_6b", "two_tower") == {"denoiser_layers": 13}
    assert head_options("two_tower_7b", "two_tower") == {"denoiser_layers": 14}
    assert head_options("two_tower_1_6b", "mse") == {}


def test_adaln_zero_init_makes_every_denoiser_layer_the_identity(tmp_path):
    denoiser = toy_head_model("two_tower", tmp_path).head.denoiser
    x, time = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
    cross = denoiser.zero_prefixed(torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.bool))
    mask = shifted_causal_mask(torch.ones(2, 5, dtype=torch.bool))
    for layer, keys, values in zip(denoiser.layers, cross.keys, cross.values):
        assert torch.equal(layer(x, layer.modulations(time), keys, values, mask), x)
    first = denoiser.layers[0]
    torch.nn.init.normal_(first.modulation.weight)
    assert not torch.allclose(first(x, first.modulations(time), cross.keys[0], cross.values[0],
                                    mask), x)


def test_shifted_cross_attention_mask_sees_the_zero_vector_and_earlier_outputs_only():
    mask = torch.tensor([[True, True, True, False]])
    expected = torch.tensor([[1, 0, 0, 0, 0],
                             [1, 1, 0, 0, 0],
                             [1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 0]], dtype=torch.bool)  # key 4 = the pad's output
    assert torch.equal(shifted_causal_mask(mask)[0], expected)
    dropped = torch.tensor([[False, True, False, False]])
    assert torch.equal(shifted_causal_mask(mask, dropped)[0, 1], torch.tensor([1, 0, 0, 0, 0]).bool())


def denoise_all(head, model, concepts, latents, steps, dropped=None):
    """The Two-Tower denoiser's output at every position for fixed noisy inputs."""
    mask = torch.ones(concepts.shape[:2], dtype=torch.bool)
    cross = head.denoiser.zero_prefixed(context_states(model.backbone, concepts, mask), mask)
    return head.denoiser(latents, steps, cross, shifted_causal_mask(mask, dropped))


def test_two_tower_position_i_cannot_see_concept_i_or_later(task, tmp_path):
    model = trained_a_little(toy_head_model("two_tower", tmp_path))
    concepts = task.concepts[:2]
    latents, steps = torch.randn_like(concepts), torch.randint(0, 100, concepts.shape[:2])
    with torch.no_grad():
        before = denoise_all(model.head, model, concepts, latents, steps)
        changed = concepts.clone()
        changed[:, 3] += 1.0  # concept 3 changes
        after = denoise_all(model.head, model, changed, latents, steps)
        torch.testing.assert_close(after[:, :4], before[:, :4])  # positions 0..3 blind to it
        assert not torch.allclose(after[:, 4], before[:, 4])  # position 4 reads it
        dropped = torch.zeros(concepts.shape[:2], dtype=torch.bool)
        dropped[:, 4] = True  # a guidance-dropped position sees only the zero vector
        torch.testing.assert_close(denoise_all(model.head, model, changed, latents, steps, dropped)[:, 4],
                                   denoise_all(model.head, model, concepts, latents, steps, dropped)[:, 4])


# --------------------------------------------------------------------------- One-Tower

def test_one_tower_mask_interleaves_clean_context_and_lone_noisy_slots():
    # slots: noisy_0, clean_0, noisy_1, clean_1, noisy_2, clean_2
    expected = torch.tensor([[1, 0, 0, 0, 0, 0],
                             [0, 1, 0, 0, 0, 0],
                             [0, 1, 1, 0, 0, 0],
                             [0, 1, 0, 1, 0, 0],
                             [0, 1, 0, 1, 1, 0],
                             [0, 1, 0, 1, 0, 1]], dtype=torch.bool)
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert torch.equal(interleaved_mask(mask)[0], expected)
    dropped = torch.tensor([[False, False, True]])
    assert torch.equal(interleaved_mask(mask, dropped)[0, 4], torch.tensor([0, 0, 0, 0, 1, 0]).bool())
    padded = interleaved_mask(torch.tensor([[True, False, True]]))[0]
    assert not padded[4, 3]  # the pad's clean slot is never a key (but sees itself)


def test_one_tower_noisy_slot_sees_earlier_clean_concepts_only(task, tmp_path):
    model = trained_a_little(toy_head_model("one_tower", tmp_path))
    head, concepts = model.head, task.concepts[:2]
    mask = torch.ones(concepts.shape[:2], dtype=torch.bool)
    latents, steps = torch.randn_like(concepts), torch.randint(0, 100, concepts.shape[:2])
    positions = torch.arange(concepts.shape[1]).repeat_interleave(2)[None].expand(2, -1)

    def outputs(clean, noisy):
        inputs = torch.stack([head.noisy_inputs(model.backbone, noisy, steps), model.prenet(clean)], 2)
        hidden = model.trunk(inputs.flatten(1, 2), positions=positions,
                             attn_mask=interleaved_mask(mask))
        return hidden[:, 0::2]  # the noisy slots

    with torch.no_grad():
        before = outputs(concepts, latents)
        changed = concepts.clone()
        changed[:, 2] += 1.0
        after = outputs(changed, latents)
        torch.testing.assert_close(after[:, :3], before[:, :3])  # noisy_0..2 cannot see clean_2
        assert not torch.allclose(after[:, 3], before[:, 3])
        other_noise = latents.clone()
        other_noise[:, 1] += 1.0  # another noisy slot changes: no one else notices
        moved = outputs(concepts, other_noise)
        torch.testing.assert_close(moved[:, [0, 2, 3, 4, 5]], before[:, [0, 2, 3, 4, 5]])


# --------------------------------------------------------------------------- guidance

@pytest.mark.parametrize("name", ["two_tower", "one_tower"])
def test_batched_guidance_equals_separate_conditional_and_unconditional_passes(name, task, tmp_path):
    """The cached, batched path against ``uncached_denoiser`` (from scratch, one pass each)."""
    model = trained_a_little(toy_head_model(name, tmp_path, **GUIDED))
    context = task.concepts[:3, :4].clone()
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1, :2] = False  # a left-padded prompt
    head, scheduler, backbone = model.head, model.head.scheduler, model.backbone
    with torch.no_grad():
        session = DecodingSession(model, context, mask, RowGenerators.seeded(11, 3)).start()
        batched = session.propose()
        state = session.state
        separate = head.uncached_denoiser(backbone, state)
        generators = RowGenerators.seeded(11, 3)
        latents = scheduler.initial_noise((3, SPACE.dim), generators)
        for t in scheduler.timesteps.tolist():
            cond, uncond = separate(torch.cat([latents, latents]), t).chunk(2)
            latents, x0 = scheduler.guided_step(cond, uncond, t, latents, generators=generators)
        # the unconditional pass ignores the context entirely
        blind = state.context + torch.randn_like(state.context)
        other = GenerationState(context=blind, context_mask=mask)
        noise = torch.randn(3, SPACE.dim)
        torch.testing.assert_close(separate(torch.cat([noise, noise]), 50)[3:],
                                   head.uncached_denoiser(backbone, other)(torch.cat([noise, noise]), 50)[3:])
    assert scheduler.uses_guidance
    torch.testing.assert_close(batched, x0, rtol=1e-4, atol=1e-5)
    assert state.cache.length == 4  # the candidates never entered the context


# --------------------------------------------------------------------------- quality

def score(predicted, targets):
    """(l2, CA) of (N, T-1, D) predictions: CA over the other documents' true concepts."""
    flat_p, flat_t = predicted.flatten(0, 1), targets.flatten(0, 1)
    documents = torch.arange(predicted.shape[0]).repeat_interleave(predicted.shape[1])
    return (float(l2_distances(flat_p, flat_t).mean()),
            float(contrastive_accuracy(flat_p, flat_t, documents).nanmean()))


def test_diffusion_heads_beat_a_context_blind_predictor_on_contrastive_accuracy(tmp_path):
    """The figures (printed with -s) go in the report: l2 and CA of each head vs the mean."""
    train, held_out = rotation_task(documents=240, length=6, seed=4).split(48)
    targets = held_out.concepts[:, 1:]
    mean = train.concepts[train.mask].mean(0).expand_as(targets)
    results = {"mean vector": score(mean, targets)}
    for name in ("mse", "one_tower", "two_tower"):
        model = toy_head_model(name, tmp_path, diffusion={"inference_steps": 10}) \
            if name != "mse" else toy_head_model(name, tmp_path)
        fit(model, train, steps=150)
        predicted = teacher_forced(model, held_out.concepts, held_out.mask, 0)
        results[name] = score(predicted, targets)
    print("\n" + "\n".join(f"{k:>12}: l2 {l2:.3f}  CA {ca:.3f}" for k, (l2, ca) in results.items()))
    blind_ca = results["mean vector"][1]
    assert abs(blind_ca - 0.5) < 0.1  # chance, as it should be
    for name in ("one_tower", "two_tower"):
        assert results[name][1] > blind_ca + 0.25, results


@pytest.mark.parametrize("spec, message", [
    ({"name": "two_tower", "denoiser_heads": 3}, "not divisible by num_heads 3"),
    ({"name": "one_tower", "cfg_dropout": 1.0}, "cfg_dropout: must be less than 1, got 1.0"),
    ({"name": "two_tower", "diffusion": {"inference_steps": 500}}, "at most train_steps=100"),
])
def test_impossible_head_options_are_refused_with_a_user_error(spec, message):
    with pytest.raises(UserError, match=message):
        model_of("toy", {}, spec, SPACE)


# --------------------------------------------------------------------------- end to end

@pytest.mark.parametrize("name", ["two_tower", "one_tower"])
def test_train_recipe_with_a_diffusion_head_trains_and_its_checkpoint_generates(name, tmp_path):
    """The mse train recipe with one line changed (``head.name``), through the CLI/DeepSpeed."""
    from lcm.generate.loop import StopRules, generate
    from lcm.model.checkpoint import load_checkpoint
    from tests._train_fixtures import run_lcm, train_recipe, walk_documents, write_shards, write_yaml

    shards = write_shards(tmp_path / "shards", walk_documents(40))
    recipe = train_recipe(shards, tmp_path / "model", steps=12, checkpoint_every=12)
    recipe["head"] = {"name": name, "diffusion": {"inference_steps": 4}}
    done = run_lcm(write_yaml(tmp_path / "train.yaml", recipe), OMP_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = load_checkpoint(tmp_path / "model", get_registry())
    assert loaded.model.head.name == name and loaded.model.head.scheduler.timesteps.numel() == 4
    prompt = torch.randn(3, loaded.space.dim)
    [continuation] = generate(loaded.model, [prompt], StopRules(max_new_concepts=2, repetition_threshold=None),
                              normalizer=loaded.normalizer)
    assert continuation.concepts.shape == (2, loaded.space.dim)


def test_the_docs_name_the_prediction_values_that_are_accepted():
    from pathlib import Path

    from lcm.diffusion.config import PREDICTIONS

    page = (Path(__file__).resolve().parents[1] / "docs" / "concepts.md").read_text()
    documented = page[page.index("`prediction` ("):].split(")")[0]
    assert [p for p in PREDICTIONS if f"`{p}`" in documented] == list(PREDICTIONS)
