"""Samplers of the diffusion heads: lcm's own DDIM, or a scheduler of diffusers behind a thin
layer that keeps what is particular to LCMs.

diffusers solves the chain (DDIM, DPM-Solver++ 2M, UniPC, Euler: fewer network passes for the
same quality is the point of a higher-order solver); the layer here owns what the LCM reference
adds around it, at every step and for every solver alike:

* the starting noise, ``initial_noise_scale`` times standard noise (times the solver's own
  ``init_noise_sigma``), one generator per document;
* classifier-free guidance with its rescale, combined in noise space as the reference DDIM does
  (the conditional prediction alone at a zero-SNR step, where the noise says nothing of x0);
* epsilon scaling: the predicted noise divided by lambda, x0 re-derived from it so the solver
  gets one consistent prediction (the reference DDIM scales only the noise term);
* clipping the predicted x0 to ±clip (DDIM's own ``clip_sample``, as the reference), and the
  latents where they are x_t (not Euler's).

The model output handed to diffusers is in the configured ``prediction`` type, and the solver is
built from lcm's own betas (``trained_betas``; zero terminal SNR applied by diffusers' identical
rescale), so a solver sees exactly the process the head was trained on. With guidance 1,
lambda 1 and no clipping the layer hands the network's output through untouched: each sampler
then runs diffusers' own steps (tests/test_samplers.py checks it step for step).
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch
from torch import Tensor

from lcm.diffusion.config import DiffusionConfig
from lcm.diffusion.scheduler import (DDIMScheduler, Denoiser, classifier_free_guidance,
                                     schedule_betas, standard_noise)
from lcm.model.randomness import RowGenerators


VP_LATENTS = ("diffusers_ddim", "dpm_solver_2m", "unipc")
"""Solvers whose latents are the network's input x_t itself (Euler's are x_t / sqrt(alpha_bar)):
their latents are clipped as the reference DDIM clips its own."""


class Sampler(Protocol):
    """Draws x0 (rows, D) by running a denoiser over a noise chain."""

    def sample(self, denoise: Denoiser, shape: Sequence[int],
               generators: RowGenerators | None = None,
               device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor: ...


def diffusers_scheduler(config: DiffusionConfig) -> Any:
    """The diffusers scheduler of ``config.sampler``, on lcm's noise schedule."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import diffusers

    shared = dict(num_train_timesteps=config.train_steps,
                  trained_betas=schedule_betas(config).tolist(),
                  rescale_betas_zero_snr=config.zero_terminal_snr,
                  prediction_type=config.prediction, timestep_spacing=config.timestep_spacing)
    if config.sampler == "diffusers_ddim":
        # DDIM clips x0 itself, as the reference does (the noise term keeps the unclipped one)
        return diffusers.DDIMScheduler(**shared, clip_sample=config.clip > 0,
                                       clip_sample_range=config.clip, set_alpha_to_one=True)
    if config.sampler == "dpm_solver_2m":
        return diffusers.DPMSolverMultistepScheduler(**shared, algorithm_type="dpmsolver++",
                                                     solver_order=2)
    if config.sampler == "unipc":
        return diffusers.UniPCMultistepScheduler(**shared)
    if config.sampler == "euler":
        return diffusers.EulerDiscreteScheduler(**shared)
    raise ValueError(f"{config.sampler!r} is not a diffusers sampler")


class LibrarySampler:
    """A diffusers scheduler driven with lcm's guidance, epsilon scaling, noise and clipping."""

    def __init__(self, reference: DDIMScheduler):
        self.reference = reference  # the schedule's alphas, guidance options, initial noise
        self.config = reference.config
        self.scheduler = diffusers_scheduler(self.config)
        self.clip_x0 = self.config.clip > 0 and self.config.sampler != "diffusers_ddim"

    def sample(self, denoise: Denoiser, shape: Sequence[int],
               generators: RowGenerators | None = None,
               device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
        """x0 of ``shape``; with guidance ``denoise`` gets the latents twice, as for DDIM."""
        scheduler = self.scheduler
        scheduler.set_timesteps(self.config.inference_steps)  # also resets multistep history
        latents = self.reference.initial_noise(shape, generators, device, dtype)
        latents = latents * scheduler.init_noise_sigma
        stochastic = self.config.sampler == "diffusers_ddim" and self.config.eta > 0
        for t in scheduler.timesteps:
            step = int(t)
            if self.config.clip > 0 and self.config.sampler in VP_LATENTS:
                latents = latents.clamp(-self.config.clip, self.config.clip)
            sample = scheduler.scale_model_input(latents, t)  # the network's (VP) input x_t
            twice = torch.cat([sample, sample]) if self.reference.uses_guidance else sample
            prediction = self.prediction(denoise(twice, step), step, sample)
            extra = {}
            if stochastic:
                extra = {"eta": self.config.eta,
                         "variance_noise": standard_noise(shape, generators, device, dtype)}
            latents = scheduler.step(prediction, t, latents, **extra).prev_sample
        return latents

    def prediction(self, output: Tensor, t: int, sample: Tensor) -> Tensor:
        """The network's ``output`` at step ``t`` (both halves with guidance) turned into what
        the solver gets: guided, epsilon-scaled, x0 clipped, in the configured prediction."""
        config, reference = self.config, self.reference
        guided = reference.uses_guidance
        cond, uncond = output.chunk(2) if guided else (output, None)
        if not (guided or config.epsilon_scaling != 1.0 or self.clip_x0):
            return cond  # everything of ours is off: the network's own output
        a = float(reference.alphas_cumprod[t])
        x0, eps = reference.x0_and_epsilon(cond, t, sample)
        if a > 0:  # at a zero-SNR step the noise is the sample: nothing to guide or scale
            if guided:
                eps = classifier_free_guidance(eps, reference.x0_and_epsilon(uncond, t, sample)[1],
                                               config.guidance_scale, config.guidance_rescale)
            eps = eps / config.epsilon_scaling
            x0 = (sample - (1 - a) ** 0.5 * eps) / a ** 0.5
        if self.clip_x0:
            x0 = x0.clamp(-config.clip, config.clip)
            if a < 1.0:
                eps = (sample - a ** 0.5 * x0) / (1 - a) ** 0.5
        if config.prediction == "sample":
            return x0
        if config.prediction == "epsilon":
            return eps
        return a ** 0.5 * eps - (1 - a) ** 0.5 * x0  # v


def build_sampler(reference: DDIMScheduler) -> Sampler:
    """The sampler ``reference.config.sampler`` names: the reference DDIM itself, or a
    diffusers scheduler behind ``LibrarySampler``."""
    if reference.config.sampler == "ddim":
        return reference
    return LibrarySampler(reference)
