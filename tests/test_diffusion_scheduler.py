"""The DDIM scheduler, checked against diffusers' DDIMScheduler/DDPMScheduler (test-only
dependency) and against the formulas it implements."""
from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler as DiffusersDDIM
from diffusers import DDPMScheduler as DiffusersDDPM
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

from lcm.diffusion.config import DiffusionConfig
from lcm.diffusion.scheduler import DDIMScheduler, classifier_free_guidance, inference_timesteps
from lcm.errors import UserError
from lcm.model.randomness import RowGenerators

SCHEDULE_NAMES = [("linear", "linear"), ("quadratic", "scaled_linear"),
                  ("cosine", "squaredcos_cap_v2")]


def ours(**options) -> DDIMScheduler:
    """A scheduler with diffusers' plain arithmetic: no epsilon scaling, no clipping."""
    base = dict(epsilon_scaling=1.0, clip=0.0, guidance_scale=1.0)
    return DDIMScheduler(DiffusionConfig(**{**base, **options}))


def theirs(cls=DiffusersDDIM, **options):
    extra = {"set_alpha_to_one": True} if cls is DiffusersDDIM else {}
    return cls(clip_sample=False, **extra, **options)


@pytest.mark.parametrize("diffusers_cls", [DiffusersDDIM, DiffusersDDPM])
@pytest.mark.parametrize("zero_snr", [False, True])
@pytest.mark.parametrize("name,diffusers_name", SCHEDULE_NAMES)
def test_betas_and_alphas_cumprod_match_diffusers(name, diffusers_name, zero_snr, diffusers_cls):
    mine = ours(schedule=name, zero_terminal_snr=zero_snr, train_steps=1000, inference_steps=50,
                beta_start=0.00085, beta_end=0.012)
    ref = theirs(diffusers_cls, num_train_timesteps=1000, beta_schedule=diffusers_name,
                 rescale_betas_zero_snr=zero_snr, beta_start=0.00085, beta_end=0.012)
    torch.testing.assert_close(mine.betas.float(), ref.betas, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mine.alphas_cumprod.float(), ref.alphas_cumprod, atol=1e-6,
                               rtol=1e-4)
    if zero_snr:
        assert mine.alphas_cumprod[-1] == 0


def test_sigmoid_schedule_follows_its_formula():
    steps = 100
    t = torch.arange(1, steps, dtype=torch.float64) / steps  # the end of each step but the last
    for alpha, beta in [(1.0, 0.0), (3.5, 0.0), (1.5, -1.0)]:
        mine = ours(schedule="sigmoid", sigmoid_alpha=alpha, sigmoid_beta=beta,
                    zero_terminal_snr=False)
        expected = torch.sigmoid(beta - alpha * torch.logit(t))
        expected = expected / torch.sigmoid(torch.tensor(beta + alpha * 73.68))  # alpha_bar(0)
        torch.testing.assert_close(mine.alphas_cumprod[:-1], expected, rtol=1e-9, atol=1e-12)
    # sigmoid(1, 0) is the linear alpha_bar(t) = 1 - t
    linear = ours(schedule="sigmoid", sigmoid_alpha=1.0, sigmoid_beta=0.0, zero_terminal_snr=False)
    torch.testing.assert_close(linear.alphas_cumprod[:-1], 1 - t)


def test_the_quadratic_exponent_shapes_the_betas():
    cubic = ours(schedule="quadratic", quadratic_exponent=3.0, zero_terminal_snr=False)
    expected = torch.linspace(1e-4 ** (1 / 3), 0.02 ** (1 / 3), 100, dtype=torch.float64) ** 3
    torch.testing.assert_close(cubic.betas, expected)


@pytest.mark.parametrize("spacing", ["trailing", "linspace", "leading"])
def test_timesteps_match_diffusers_for_each_spacing(spacing):
    for train_steps, steps in [(100, 40), (100, 7), (1000, 50), (100, 100), (10, 3), (100, 1)]:
        ref = theirs(num_train_timesteps=train_steps, timestep_spacing=spacing)
        ref.set_timesteps(steps)
        assert inference_timesteps(spacing, train_steps, steps).tolist() == ref.timesteps.tolist()


STEP_CASES = [("sample", True), ("v_prediction", True), ("sample", False), ("epsilon", False),
              ("v_prediction", False)]


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
@pytest.mark.parametrize("eta", [0.0, 0.6])
@pytest.mark.parametrize("prediction,zero_snr", STEP_CASES)
def test_ddim_steps_match_diffusers(prediction, zero_snr, eta, spacing):
    # 20 divides 100, so diffusers' t - T // steps is also the next timestep of the schedule
    mine = ours(prediction=prediction, zero_terminal_snr=zero_snr, timestep_spacing=spacing,
                inference_steps=20)
    ref = theirs(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2",
                 prediction_type=prediction, rescale_betas_zero_snr=zero_snr,
                 timestep_spacing=spacing)
    ref.set_timesteps(20)
    assert mine.timesteps.tolist() == ref.timesteps.tolist()
    gen = torch.Generator().manual_seed(0)
    for t in mine.timesteps.tolist():
        sample, output, noise = (torch.randn(3, 16, generator=gen) for _ in range(3))
        prev, x0 = mine.step(output, t, sample, eta=eta, noise=noise)
        expected = ref.step(output, t, sample, eta=eta, variance_noise=noise)
        torch.testing.assert_close(x0, expected.pred_original_sample, atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(prev, expected.prev_sample, atol=2e-4, rtol=1e-4)


def test_add_noise_matches_diffusers_and_broadcasts_over_sequences():
    mine = ours(train_steps=1000, inference_steps=50)
    ref = theirs(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                 rescale_betas_zero_snr=True)
    gen = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
    t = torch.randint(0, 1000, (6,), generator=gen)
    torch.testing.assert_close(mine.add_noise(x0, noise, t), ref.add_noise(x0, noise, t))
    torch.testing.assert_close(mine.velocity(x0, noise, t), ref.get_velocity(x0, noise, t))
    # [B, S, D] concepts with a timestep per position, as the diffusion heads use it
    seq = mine.add_noise(x0.view(2, 3, 8), noise.view(2, 3, 8), t.view(2, 3))
    torch.testing.assert_close(seq.view(6, 8), ref.add_noise(x0, noise, t))


def knows_x0(scheduler: DDIMScheduler, x0: torch.Tensor, calls: list):
    """A denoiser that outputs, for any noisy sample, exactly what predicts ``x0``."""
    def denoise(latents: torch.Tensor, t: int) -> torch.Tensor:
        calls.append((latents.shape[0], t))
        target = x0.repeat(latents.shape[0] // x0.shape[0], 1)
        a = scheduler.alphas_cumprod[t].float()
        eps = (latents - a.sqrt() * target) / (1 - a).sqrt()
        return scheduler.training_target(target, eps, t)
    return denoise


@pytest.mark.parametrize("prediction,zero_snr", STEP_CASES)
def test_a_full_loop_with_a_model_that_knows_x0_recovers_it(prediction, zero_snr):
    scheduler = DDIMScheduler(DiffusionConfig(prediction=prediction, zero_terminal_snr=zero_snr,
                                              guidance_scale=1.0))
    x0, calls = torch.randn(4, 32, generator=torch.Generator().manual_seed(2)), []
    out = scheduler.sample(knows_x0(scheduler, x0, calls), x0.shape,
                           generators=RowGenerators.seeded(3, 4))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)
    assert [t for _, t in calls] == scheduler.timesteps.tolist() and len(calls) == 10


def test_the_default_loop_batches_guidance_with_the_conditional_pass():
    scheduler = DDIMScheduler()  # the brief's defaults: guidance 3, rescale 0.7, lambda 1.00045
    assert (scheduler.config.train_steps, scheduler.config.inference_steps) == (100, 10)
    assert scheduler.config.sampler == "ddim"
    assert scheduler.timesteps[0] == 99 and scheduler.alphas_cumprod[99] == 0
    x0, calls = torch.randn(2, 16), []
    out = scheduler.sample(knows_x0(scheduler, x0, calls), x0.shape)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)
    assert {batch for batch, _ in calls} == {4}  # [cond; uncond] in one call


def test_steps_follow_the_schedule_when_steps_do_not_divide_t():
    scheduler = ours(inference_steps=40)  # T=100, 40 steps: trailing timesteps are 2 or 3 apart
    x0, noise = torch.randn(2, 8), torch.randn(2, 8)
    timesteps = scheduler.timesteps.tolist()
    assert {a - b for a, b in zip(timesteps, timesteps[1:])} == {2, 3}
    for t, after in zip(timesteps, timesteps[1:]):
        prev, _ = scheduler.step(x0, t, scheduler.add_noise(x0, noise, t))
        torch.testing.assert_close(prev, scheduler.add_noise(x0, noise, after))


def test_epsilon_scaling_divides_the_predicted_noise():
    plain, scaled = ours(zero_terminal_snr=False), ours(zero_terminal_snr=False,
                                                        epsilon_scaling=1.5)
    sample, x0 = torch.randn(2, 8), torch.randn(2, 8)
    t = int(plain.timesteps[3])
    after = plain.previous_timestep(t)
    a, a_prev = plain.alphas_cumprod[t].item(), plain.alphas_cumprod[after].item()
    eps = (sample - a ** 0.5 * x0) / (1 - a) ** 0.5
    prev, _ = scaled.step(x0, t, sample)
    torch.testing.assert_close(prev, a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps / 1.5)


def test_guidance_rescale_matches_the_papers_formula():
    gen = torch.Generator().manual_seed(4)
    cond, uncond = torch.randn(5, 64, generator=gen), torch.randn(5, 64, generator=gen)
    for scale, rescale in [(3.0, 0.7), (7.5, 1.0), (2.0, 0.0)]:
        guided = uncond + scale * (cond - uncond)
        expected = rescale_noise_cfg(guided, cond, guidance_rescale=rescale)
        got = classifier_free_guidance(cond, uncond, scale, rescale)
        torch.testing.assert_close(got, expected)
    full = classifier_free_guidance(cond, uncond, 7.5, 1.0)
    torch.testing.assert_close(full.std(dim=-1), cond.std(dim=-1))


def test_guided_step_combines_noise_predictions_and_uses_the_conditional_one_at_zero_snr():
    scheduler = DDIMScheduler(DiffusionConfig(guidance_scale=3.0, guidance_rescale=0.7))
    gen = torch.Generator().manual_seed(5)
    sample, cond, uncond = (torch.randn(2, 8, generator=gen) for _ in range(3))
    first, second = scheduler.timesteps[:2].tolist()
    assert scheduler.alphas_cumprod[first] == 0  # trailing starts at the pure-noise step
    for a, b in zip(scheduler.guided_step(cond, uncond, first, sample),
                    scheduler.step(cond, first, sample)):
        torch.testing.assert_close(a, b)
    eps = classifier_free_guidance(scheduler.x0_and_epsilon(cond, second, sample)[1],
                                   scheduler.x0_and_epsilon(uncond, second, sample)[1], 3.0, 0.7)
    for a, b in zip(scheduler.guided_step(cond, uncond, second, sample),
                    scheduler.step(eps, second, sample, prediction="epsilon")):
        torch.testing.assert_close(a, b)


def test_initial_noise_is_scaled_and_latents_are_clipped():
    scheduler = DDIMScheduler(DiffusionConfig(initial_noise_scale=0.6, clip=100.0))
    noise = scheduler.initial_noise((4000, 8), RowGenerators.seeded(6, 4000))
    assert abs(noise.std().item() - 0.6) < 0.01
    loud = DDIMScheduler(DiffusionConfig(initial_noise_scale=1000.0, clip=100.0))
    noise = loud.initial_noise((100, 8), RowGenerators.seeded(6, 100))
    assert noise.abs().max() == 100.0
    prev, x0 = loud.step(torch.full((2, 8), 1e4), int(loud.timesteps[5]), torch.zeros(2, 8))
    assert x0.abs().max() == 100.0 and prev.abs().max() <= 100.0


def test_training_timesteps_are_seeded_and_beta_sampling_favours_small_t():
    uniform = ours()
    draw = lambda s: s.sample_timesteps((4, 5000), torch.Generator().manual_seed(7))
    assert torch.equal(draw(uniform), draw(uniform))
    t = draw(uniform)
    assert t.min() == 0 and t.max() == 99 and abs(t.float().mean().item() - 49.5) < 1.5
    beta = ours(timestep_sampling="beta", beta_sampling_a=0.8, beta_sampling_b=1.0)
    mean = draw(beta).float().mean().item() / 100  # Beta(0.8, 1) has mean 0.8 / 1.8
    assert abs(mean - 0.8 / 1.8) < 0.02


def test_min_snr_loss_weights_clamp_the_snr():
    t = torch.tensor([0, 10, 50, 90, 99])
    assert torch.equal(ours().loss_weights(t), torch.ones(5))
    weighted = ours(loss_weighting="clamp_snr", snr_clamp=5.0)
    snr = weighted.snr[t]
    expected = snr.clamp(max=5.0)
    torch.testing.assert_close(weighted.loss_weights(t), (expected / expected.mean()).float())
    assert weighted.loss_weights(t)[-1] == 0  # the zero-SNR step carries no x0 information
    v = ours(loss_weighting="clamp_snr", prediction="v_prediction")
    expected = snr.clamp(max=5.0) / (snr + 1)
    torch.testing.assert_close(v.loss_weights(t), (expected / expected.mean()).float())


@pytest.mark.parametrize("options,named", [
    ({"schedule": "cosin"}, "schedule: 'cosin' is not one of cosine, quadratic, sigmoid, linear"),
    ({"prediction": "x0"}, "prediction: 'x0' is not one of sample, epsilon, v_prediction"),
    ({"timestep_spacing": "even"}, "timestep_spacing: 'even' is not one of trailing, linspace"),
    ({"timestep_sampling": "normal"}, "timestep_sampling: 'normal' is not one of uniform, beta"),
    ({"loss_weighting": "snr"}, "loss_weighting: 'snr' is not one of none, clamp_snr"),
    ({"inference_steps": 101}, "inference_steps=101 must be at most train_steps=100"),
    ({"guidance_rescale": 1.5}, "guidance_rescale: must be at most 1, got 1.5"),
    ({"epsilon_scaling": 0.0}, "epsilon_scaling: must be greater than 0, got 0.0"),
    ({"prediction": "epsilon"}, "prediction='epsilon' cannot recover x0"),
])
def test_invalid_options_raise_a_user_error_naming_them(options, named):
    with pytest.raises(UserError, match=named.replace("[", r"\[").replace("(", r"\(")):
        DDIMScheduler(DiffusionConfig(**options))
    with pytest.raises(UserError, match="inference_steps=0 must be between 1 and"):
        DDIMScheduler().set_timesteps(0)
