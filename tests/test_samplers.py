"""The diffusers samplers behind a diffusion head, checked against diffusers' own schedulers
driven the way its pipelines drive them, and the library DDIM against lcm's reference DDIM."""
from __future__ import annotations

import diffusers
import pytest
import torch

from lcm.diffusion.config import DiffusionConfig
from lcm.diffusion.samplers import LibrarySampler, build_sampler
from lcm.diffusion.scheduler import DDIMScheduler
from lcm.errors import UserError
from lcm.model.randomness import RowGenerators

LIBRARY = {"diffusers_ddim": (diffusers.DDIMScheduler, {"set_alpha_to_one": True,
                                                        "clip_sample": False}),
           "dpm_solver_2m": (diffusers.DPMSolverMultistepScheduler,
                             {"algorithm_type": "dpmsolver++", "solver_order": 2}),
           "unipc": (diffusers.UniPCMultistepScheduler, {}),
           "euler": (diffusers.EulerDiscreteScheduler, {})}
SHARED = [("sample", True, "trailing"), ("v_prediction", True, "trailing"),
          ("epsilon", False, "leading"), ("sample", False, "linspace")]
"""(prediction, zero terminal SNR, spacing) configurations both libraries support."""


def recording(calls: list, seed: int = 0):
    """A fixed random network: a linear map of the latents and t, recording what it sees."""
    gen = torch.Generator().manual_seed(seed)
    weight, bias = torch.randn(16, 16, generator=gen) / 4, torch.randn(16, generator=gen)

    def denoise(latents: torch.Tensor, t: int) -> torch.Tensor:
        calls.append((int(t), latents.clone()))
        return latents @ weight + bias * (t / 100)
    return denoise


@pytest.mark.parametrize("prediction,zero_snr,spacing", SHARED)
@pytest.mark.parametrize("sampler", sorted(LIBRARY))
@pytest.mark.parametrize("steps", [5, 20])
def test_each_sampler_runs_diffusers_own_steps(sampler, prediction, zero_snr, spacing, steps):
    """With lcm's parts off (guidance 1, lambda 1, no clipping, unit noise) every network call
    sees what diffusers' scheduler, built from its own named cosine schedule, gives it."""
    config = DiffusionConfig(sampler=sampler, prediction=prediction, zero_terminal_snr=zero_snr,
                             timestep_spacing=spacing, inference_steps=steps, guidance_scale=1.0,
                             epsilon_scaling=1.0, clip=0.0, initial_noise_scale=1.0)
    ours = []
    result = build_sampler(DDIMScheduler(config)).sample(
        recording(ours), (3, 16), RowGenerators.seeded(7, 3))

    cls, options = LIBRARY[sampler]
    scheduler = cls(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2",
                    prediction_type=prediction, rescale_betas_zero_snr=zero_snr,
                    timestep_spacing=spacing, **options)
    scheduler.set_timesteps(steps)
    theirs, denoise = [], recording([])
    latents = RowGenerators.seeded(7, 3).randn((16,)) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        theirs.append((int(t), model_input))
        latents = scheduler.step(denoise(model_input, int(t)), t, latents).prev_sample

    assert [t for t, _ in ours] == [t for t, _ in theirs] and len(ours) == steps
    for (_, a), (_, b) in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(result, latents, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prediction,zero_snr", [("sample", True), ("v_prediction", True),
                                                 ("v_prediction", False)])
def test_library_ddim_with_guidance_and_clipping_equals_the_reference_ddim(prediction, zero_snr):
    """lcm's layer (guidance 3 with rescale, clipping) around diffusers' DDIM gives what lcm's
    own DDIM gives, at a step count dividing T (diffusers' DDIM steps by T // steps)."""
    options = dict(prediction=prediction, zero_terminal_snr=zero_snr, inference_steps=20,
                   guidance_scale=3.0, guidance_rescale=0.7, epsilon_scaling=1.0, clip=3.0)
    reference = DDIMScheduler(DiffusionConfig(**options))
    library = build_sampler(DDIMScheduler(DiffusionConfig(sampler="diffusers_ddim", **options)))
    assert isinstance(library, LibrarySampler)
    want = reference.sample(recording([]), (3, 16), RowGenerators.seeded(1, 3))
    got = library.sample(recording([]), (3, 16), RowGenerators.seeded(1, 3))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sampler", sorted(LIBRARY))
def test_a_network_that_knows_x0_leads_every_sampler_to_it(sampler):
    """Guidance, epsilon scaling and noise as the defaults set them: an exact x0 predictor (the
    same for both passes) ends every chain at x0, within what lambda moves it."""
    config = DiffusionConfig(sampler=sampler, inference_steps=10)
    reference = DDIMScheduler(config)
    x0 = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
    sampler_ = build_sampler(reference)
    out = sampler_.sample(lambda latents, t: x0.repeat(latents.shape[0] // 2, 1), x0.shape,
                          RowGenerators.seeded(0, 2))
    torch.testing.assert_close(out, x0, rtol=1e-2, atol=1e-2)


def test_eta_needs_a_ddim_sampler():
    with pytest.raises(UserError, match="eta=0.5 needs a DDIM sampler, not sampler='unipc'"):
        DDIMScheduler(DiffusionConfig(sampler="unipc", eta=0.5))
    with pytest.raises(UserError, match="sampler: 'dpm' is not one of ddim, dpm_solver_2m"):
        DDIMScheduler(DiffusionConfig(sampler="dpm"))


@pytest.mark.parametrize("name", ["two_tower", "one_tower"])
def test_a_generating_recipe_picks_the_sampler_and_its_steps(name, task, tmp_path):
    """``sampling: {diffusion: {sampler, inference_steps}}`` (a generate or summarize recipe's
    section) swaps the solver of a trained model; each sampler's continuations are finite and
    differ from the reference DDIM's."""
    from lcm.generate.loop import StopRules, generate
    from lcm.model.checkpoint import load_checkpoint, save_checkpoint
    from lcm.registry import get_registry
    from tests._head_fixtures import SPACE, fit, toy_head_model
    from tests._model_fixtures import toy_normalizer

    model = toy_head_model(name, tmp_path, seed=2)
    fit(model, task, steps=3)
    save_checkpoint(tmp_path / "model", model, toy_normalizer(SPACE))
    prompts = [task.concepts[0, :3]]
    rules = StopRules(max_new_concepts=2, repetition_threshold=None)
    reference = generate(model, prompts, rules, seed=1)[0].concepts
    for sampler in sorted(LIBRARY):
        loaded = load_checkpoint(tmp_path / "model", get_registry(), sampling={
            "diffusion": {"sampler": sampler, "inference_steps": 5}}).model
        assert isinstance(loaded.head.sampler, LibrarySampler)
        assert loaded.head.sampler.scheduler.config.num_train_timesteps == 100
        got = generate(loaded, prompts, rules, seed=1)[0].concepts
        assert got.shape == reference.shape and torch.isfinite(got).all()
        assert not torch.allclose(got, reference)
