"""The DDIM scheduler of the LCM reference: noise schedules, noising for training, and
DDIM denoising steps with classifier-free guidance for generation.

Only arithmetic lives here; the head owns the network. In training a head calls
``sample_timesteps``, ``add_noise``, ``training_target`` and ``loss_weights``; in generation
``sample`` (or ``set_timesteps`` and ``step`` / ``guided_step`` in its own loop). Schedules are
computed in float64 and cast to the sample's dtype where used. The test suite checks betas,
timesteps and steps against diffusers' DDIMScheduler.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from lcm.fields import require_valid
from lcm.diffusion.config import DiffusionConfig
from lcm.errors import UserError
from lcm.model.randomness import RowGenerators

_MAX_BETA = 0.999
"""Cap on the betas of alpha-bar schedules, so no single step destroys all signal."""

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]
"""``denoise(latents, t)``: the head's network output for ``latents`` at timestep ``t``."""


# --------------------------------------------------------------------------- schedules

def betas_from_alpha_bar(alpha_bar: Callable[[float], float], steps: int) -> torch.Tensor:
    """Betas whose cumulative product of (1 - beta) follows ``alpha_bar`` over t in [0, 1]."""
    betas = [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), _MAX_BETA)
             for i in range(steps)]
    return torch.tensor(betas, dtype=torch.float64)


def cosine_alpha_bar(offset: float) -> Callable[[float], float]:
    """Nichol & Dhariwal's cos((t + s) / (1 + s) * pi / 2) ** 2."""
    return lambda t: math.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2


def sigmoid_alpha_bar(alpha: float, beta: float) -> Callable[[float], float]:
    """The LCM paper's sigmoid(beta - alpha * logit(t)), rewritten to stay finite at t=0, 1."""
    def alpha_bar(t: float) -> float:
        keep, destroy = (1 - t) ** alpha, math.exp(-beta) * t ** alpha
        return keep / (keep + destroy)
    return alpha_bar


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alpha_bar) so the last step has zero signal (Lin et al. 2023, Alg. 1).

    Without it the last training step still leaks signal, yet generation starts from pure
    noise; the first value is kept so the low-noise end is unchanged.
    """
    root = torch.cumprod(1 - betas, dim=0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    alpha_bar = root ** 2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1 - alphas


def make_betas(config: DiffusionConfig) -> torch.Tensor:
    """The ``[train_steps]`` betas (float64) of the configured schedule, zero-terminal-SNR
    rescaled where configured."""
    betas = schedule_betas(config)
    return rescale_zero_terminal_snr(betas) if config.zero_terminal_snr else betas


def schedule_betas(config: DiffusionConfig) -> torch.Tensor:
    """The ``[train_steps]`` betas (float64) of the configured schedule, before any rescaling."""
    steps = config.train_steps
    if config.schedule == "linear":
        return torch.linspace(config.beta_start, config.beta_end, steps, dtype=torch.float64)
    if config.schedule == "quadratic":
        p = config.quadratic_exponent
        return torch.linspace(config.beta_start ** (1 / p), config.beta_end ** (1 / p), steps,
                              dtype=torch.float64) ** p
    if config.schedule == "cosine":
        return betas_from_alpha_bar(cosine_alpha_bar(config.cosine_offset), steps)
    # sigmoid; require_valid has refused anything else
    return betas_from_alpha_bar(sigmoid_alpha_bar(config.sigmoid_alpha, config.sigmoid_beta),
                                steps)


def inference_timesteps(spacing: str, train_steps: int, steps: int) -> torch.Tensor:
    """Which training timesteps generation visits, descending (Lin et al. 2023, Table 2)."""
    if not 1 <= steps <= train_steps:
        raise UserError(f"diffusion option inference_steps={steps} must be between 1 and "
                        f"train_steps={train_steps}")
    if spacing == "linspace":
        points = torch.linspace(0, train_steps - 1, steps, dtype=torch.float64).round()
    elif spacing == "leading":
        points = torch.arange(steps, dtype=torch.float64) * (train_steps // steps)
    else:  # trailing: always starts at the last (pure-noise) step
        points = torch.arange(train_steps, 0, -train_steps / steps, dtype=torch.float64).round() - 1
    return points.long().sort(descending=True).values


# --------------------------------------------------------------------------- guidance

def classifier_free_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float,
                             rescale: float = 0.0) -> torch.Tensor:
    """``uncond + scale * (cond - uncond)``, its std pulled back towards the conditional one.

    Large guidance scales inflate the prediction's norm; ``rescale`` blends in the guided
    prediction rescaled to the conditional std (Lin et al. 2023, Sec. 3.4), per vector.
    """
    guided = uncond + scale * (cond - uncond)
    if rescale == 0:
        return guided
    factor = cond.std(dim=-1, keepdim=True) / guided.std(dim=-1, keepdim=True)
    return (rescale * factor + (1 - rescale)) * guided


# --------------------------------------------------------------------------- scheduler

class DDIMScheduler:
    """Noising for training and DDIM denoising for generation, per ``DiffusionConfig``."""

    def __init__(self, config: DiffusionConfig | None = None):
        self.config = require_valid(config or DiffusionConfig(), "diffusion")
        self.betas = make_betas(self.config)  # [T], float64
        self.alphas_cumprod = torch.cumprod(1 - self.betas, dim=0)  # alpha_bar, [T]
        self.timesteps = self.set_timesteps(self.config.inference_steps)

    @property
    def train_steps(self) -> int:
        return self.config.train_steps

    @property
    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) of each training step."""
        return self.alphas_cumprod / (1 - self.alphas_cumprod)

    def set_timesteps(self, steps: int) -> torch.Tensor:
        """Choose the ``steps`` timesteps generation visits; returns them, descending."""
        self.timesteps = inference_timesteps(self.config.timestep_spacing, self.train_steps,
                                             steps)
        self._alphas: dict[int, tuple[float, float]] | None = None  # filled on the first step
        return self.timesteps

    def step_alphas(self, t: int) -> tuple[float, float]:
        """(alpha_bar at ``t``, at the next visited step): plain floats, computed once per
        schedule, so the chain does no tensor work for them."""
        if self._alphas is None:
            visited, alpha = self.timesteps.tolist(), self.alphas_cumprod.tolist()
            self._alphas = {step: (alpha[step], alpha[after] if after >= 0 else 1.0)
                            for step, after in zip(visited, visited[1:] + [-1])}
        if t not in self._alphas:
            self.previous_timestep(t)  # raises: t is not in the schedule
        return self._alphas[t]

    # ----------------------------------------------------------------------- training

    def _alpha_bar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar at ``t`` in ``like``'s dtype/device, broadcastable against ``like``.

        ``t`` is an int or a tensor whose shape is a prefix of ``like``'s (e.g. [B] or [B, S]
        for [B, S, D]).
        """
        t = torch.as_tensor(t, device=self.alphas_cumprod.device).long()
        values = self.alphas_cumprod[t].to(device=like.device, dtype=like.dtype)
        return values.reshape(t.shape + (1,) * (like.dim() - t.dim()))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor,
                  t: torch.Tensor | int) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise."""
        a = self._alpha_bar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def velocity(self, x0: torch.Tensor, noise: torch.Tensor,
                 t: torch.Tensor | int) -> torch.Tensor:
        """v = sqrt(alpha_bar_t) noise - sqrt(1 - alpha_bar_t) x0 (Salimans & Ho 2022)."""
        a = self._alpha_bar(t, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor,
                        t: torch.Tensor | int) -> torch.Tensor:
        """What the model is trained to output, per the configured prediction type."""
        if self.config.prediction == "sample":
            return x0
        if self.config.prediction == "epsilon":
            return noise
        return self.velocity(x0, noise, t)

    def sample_timesteps(self, shape: Sequence[int], generator: torch.Generator | None = None,
                         device: torch.device | str | None = None) -> torch.Tensor:
        """Training timesteps, uniform over [0, T) or Beta(a, b)-weighted over t / T."""
        gen_device = generator.device if generator is not None else "cpu"
        shape = tuple(shape)
        if self.config.timestep_sampling == "uniform":
            t = torch.randint(0, self.train_steps, shape, generator=generator, device=gen_device)
        else:
            t = torch.multinomial(self._beta_step_probabilities().to(gen_device),
                                  math.prod(shape), replacement=True,
                                  generator=generator).reshape(shape)
        return t.to(device) if device is not None else t

    def _beta_step_probabilities(self) -> torch.Tensor:
        """Beta(a, b) density at the midpoints of the T steps (finite even for a or b < 1)."""
        a, b = self.config.beta_sampling_a, self.config.beta_sampling_b
        u = (torch.arange(self.train_steps, dtype=torch.float64) + 0.5) / self.train_steps
        density = u ** (a - 1) * (1 - u) ** (b - 1)
        return (density / density.sum()).float()

    def loss_weights(self, t: torch.Tensor) -> torch.Tensor:
        """Per-element loss weights for timesteps ``t``, with mean 1 over ``t``.

        ``clamp_snr`` is min-SNR weighting (Hang et al. 2023): min(SNR, gamma) for an x0 loss,
        expressed in the loss of the configured prediction type (divided by SNR for epsilon,
        by SNR + 1 for v). It stops the many easy low-noise steps dominating training.
        """
        if self.config.loss_weighting == "none":
            return torch.ones(t.shape, device=t.device)
        snr = self.snr.to(t.device)[t.long()]
        weights = snr.clamp(max=self.config.snr_clamp)
        if self.config.prediction == "epsilon":
            weights = weights / snr
        elif self.config.prediction == "v_prediction":
            weights = weights / (snr + 1)
        weights = weights / weights.mean().clamp_min(torch.finfo(weights.dtype).tiny)
        return weights.float()

    # ----------------------------------------------------------------------- generation

    def x0_and_epsilon(self, model_output: torch.Tensor, t: int, sample: torch.Tensor,
                       prediction: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The clean sample and the noise implied by ``model_output`` for ``sample`` at ``t``."""
        a = float(self.alphas_cumprod[t])
        b = 1 - a
        prediction = prediction or self.config.prediction
        if prediction == "sample":
            return model_output, (sample - a ** 0.5 * model_output) / b ** 0.5
        if prediction == "epsilon":
            return (sample - b ** 0.5 * model_output) / a ** 0.5, model_output
        return a ** 0.5 * sample - b ** 0.5 * model_output, a ** 0.5 * model_output + b ** 0.5 * sample

    def previous_timestep(self, t: int) -> int:
        """The timestep after ``t`` in the inference schedule; -1 after the last one.

        Unlike diffusers' DDIM (t - T // steps) this follows the schedule, which differs when
        ``steps`` does not divide T (the defaults T=100, 40 steps).
        """
        later = self.timesteps[self.timesteps < t]
        if not bool((self.timesteps == t).any()):
            raise ValueError(f"timestep {t} is not in the inference schedule "
                             f"{self.timesteps.tolist()}")
        return int(later[0]) if len(later) else -1

    def step(self, model_output: torch.Tensor, t: int | torch.Tensor, sample: torch.Tensor,
             eta: float | None = None, generators: RowGenerators | None = None,
             noise: torch.Tensor | None = None,
             prediction: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One DDIM step from ``sample`` at ``t``: (the sample at the next timestep, predicted x0).

        DDIM eq. 12 (Song et al. 2021) with the predicted noise divided by the epsilon-scaling
        lambda; ``noise`` (or ``generators``, per row) feeds the eta > 0 term; results clipped
        to ±clip.
        """
        t = int(t)
        eta = self.config.eta if eta is None else eta
        a_t, a_prev = self.step_alphas(t)
        x0, eps = self.x0_and_epsilon(model_output, t, sample, prediction)
        eps = eps / self.config.epsilon_scaling
        x0 = self._clip(x0)
        variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
        std = eta * variance ** 0.5
        prev_sample = a_prev ** 0.5 * x0 + max(1 - a_prev - std ** 2, 0.0) ** 0.5 * eps
        if std > 0:
            if noise is None:
                noise = standard_noise(model_output.shape, generators, model_output.device,
                                       model_output.dtype)
            prev_sample = prev_sample + std * noise
        return self._clip(prev_sample), x0

    def guided_step(self, cond_output: torch.Tensor, uncond_output: torch.Tensor,
                    t: int | torch.Tensor, sample: torch.Tensor, eta: float | None = None,
                    generators: RowGenerators | None = None,
                    noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A DDIM step with classifier-free guidance, combined in noise space as the reference.

        At a zero-SNR step the noise carries no information about x0 (it equals the sample),
        so guidance cannot act and the conditional prediction is used alone.
        """
        t = int(t)
        if float(self.alphas_cumprod[t]) == 0.0:
            return self.step(cond_output, t, sample, eta, generators, noise)
        eps_cond = self.x0_and_epsilon(cond_output, t, sample)[1]
        eps_uncond = self.x0_and_epsilon(uncond_output, t, sample)[1]
        eps = classifier_free_guidance(eps_cond, eps_uncond, self.config.guidance_scale,
                                       self.config.guidance_rescale)
        return self.step(eps, t, sample, eta, generators, noise, prediction="epsilon")

    def initial_noise(self, shape: Sequence[int], generators: RowGenerators | None = None,
                      device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Starting latents: standard noise times ``initial_noise_scale``, clipped."""
        latents = standard_noise(shape, generators, device, dtype)
        return self._clip(latents * self.config.initial_noise_scale)

    @property
    def uses_guidance(self) -> bool:
        return self.config.guidance_scale != 1.0

    def sample(self, denoise: Denoiser, shape: Sequence[int],
               generators: RowGenerators | None = None,
               device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Generate x0 of ``shape`` by running the DDIM chain over ``self.timesteps``.

        With guidance (``guidance_scale != 1``) ``denoise`` receives the latents twice,
        ``[2B, ...]``: it must condition the first half on the context and the second half on
        no context, so both passes run as one batch.
        """
        latents = self.initial_noise(shape, generators, device, dtype)
        x0 = latents
        for t in self.timesteps.tolist():
            if self.uses_guidance:
                cond, uncond = denoise(torch.cat([latents, latents]), t).chunk(2)
                latents, x0 = self.guided_step(cond, uncond, t, latents, generators=generators)
            else:
                latents, x0 = self.step(denoise(latents, t), t, latents, generators=generators)
        return x0

    def _clip(self, x: torch.Tensor) -> torch.Tensor:
        bound = self.config.clip
        return x.clamp(-bound, bound) if bound > 0 else x


def standard_noise(shape: Sequence[int], generators: RowGenerators | None,
                   device: torch.device | str | None, dtype: torch.dtype) -> torch.Tensor:
    """(rows, ...) standard noise, row i from ``generators``' row i (unseeded without them)."""
    if generators is None:
        return torch.randn(tuple(shape), device=device, dtype=dtype)
    if len(generators) != shape[0]:
        raise ValueError(f"{len(generators)} generators for {shape[0]} rows of noise")
    return generators.randn(shape[1:], device, dtype)
