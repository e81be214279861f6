"""Options of the diffusion process, shared by every diffusion head.

Kept apart from the arithmetic (``scheduler.py``) and free of torch, so a head's recipe
``Config`` can embed ``DiffusionConfig`` while listing plugins and validating recipes stays
fast. Defaults are those of the LCM reference / paper (see LCM_BRIEF.md, "Diffusion").
"""
from __future__ import annotations

from dataclasses import dataclass

from lcm.fields import bounded, choice

SCHEDULES = ("cosine", "quadratic", "sigmoid", "linear")
PREDICTIONS = ("sample", "epsilon", "v_prediction")
SPACINGS = ("trailing", "linspace", "leading")
TIMESTEP_SAMPLINGS = ("uniform", "beta")
LOSS_WEIGHTINGS = ("none", "clamp_snr")
SAMPLERS = ("ddim", "dpm_solver_2m", "unipc", "euler", "diffusers_ddim")
"""``ddim``: lcm's own DDIM (the reference); the others are diffusers' schedulers
(DPMSolverMultistep with dpmsolver++ order 2, UniPCMultistep, EulerDiscrete, DDIM)."""


@dataclass
class DiffusionConfig:
    """How concepts are noised in training and denoised (DDIM) in generation."""

    # --- the noise schedule (fixed at training time)
    train_steps: int = bounded(100, ge=1)
    """Number of diffusion steps T the model is trained with."""
    schedule: str = choice("cosine", SCHEDULES)
    """How the cumulative signal level falls over t: cosine, quadratic, sigmoid or linear."""
    cosine_offset: float = bounded(0.008, ge=0)
    """The ``s`` of the cosine schedule (Nichol & Dhariwal): keeps beta small near t=0."""
    beta_start: float = bounded(0.0001, gt=0, lt=1)
    """First beta of the linear and quadratic schedules."""
    beta_end: float = bounded(0.02, gt=0, lt=1)
    """Last beta of the linear and quadratic schedules."""
    quadratic_exponent: float = bounded(2.0, gt=0)
    """The quadratic schedule interpolates beta**(1/exponent) linearly (2: scaled-linear)."""
    sigmoid_alpha: float = bounded(1.5, gt=0)
    """Slope of the sigmoid schedule: alpha_bar(t) = sigmoid(beta - alpha * logit(t))."""
    sigmoid_beta: float = 0.0
    """Shift of the sigmoid schedule (paper Table 5's best: alpha 3.5, beta 0)."""
    zero_terminal_snr: bool = True
    """Rescale betas so the last step is pure noise (Lin et al. 2023, Algorithm 1)."""
    prediction: str = choice("sample", PREDICTIONS)
    """What the model predicts: the clean concept (sample), the noise (epsilon) or v."""

    # --- training
    timestep_sampling: str = choice("uniform", TIMESTEP_SAMPLINGS)
    """How training timesteps are drawn: uniformly, or from a Beta(a, b) over t/T."""
    beta_sampling_a: float = bounded(0.8, gt=0)
    """``a`` of the Beta timestep distribution (a < 1 favours small t)."""
    beta_sampling_b: float = bounded(1.0, gt=0)
    """``b`` of the Beta timestep distribution."""
    loss_weighting: str = choice("none", LOSS_WEIGHTINGS)
    """Per-step loss weights: none, or min-SNR (the SNR clamped at ``snr_clamp``)."""
    snr_clamp: float = bounded(5.0, gt=0)
    """The gamma of min-SNR weighting: weights are min(SNR(t), gamma) in x0 terms."""

    # --- generation
    sampler: str = choice("ddim", SAMPLERS)
    """How the chain is solved: lcm's DDIM, or one of diffusers' schedulers (see SAMPLERS)."""
    inference_steps: int = bounded(10, ge=1)
    """Denoising steps at generation time (at most ``train_steps``). 10: as good as 40 within
    the noise of seeds on held-out Wikipedia (README, "Benchmarks"), at a quarter of the cost."""
    timestep_spacing: str = choice("trailing", SPACINGS)
    """Which of the T steps are visited (Lin et al. 2023, Table 2)."""
    eta: float = bounded(0.0, ge=0)
    """DDIM stochasticity: 0 is deterministic DDIM, 1 is DDPM-like."""
    initial_noise_scale: float = bounded(0.6, ge=0)
    """Standard deviation of the starting noise."""
    guidance_scale: float = 3.0
    """Classifier-free guidance weight w (1: no guidance, no unconditional pass)."""
    guidance_rescale: float = bounded(0.7, ge=0, le=1)
    """Blend towards the conditional prediction's std (Lin et al. 2023, Sec. 3.4)."""
    epsilon_scaling: float = bounded(1.00045, gt=0)
    """Divide the predicted noise by this lambda in each step (Ning et al. 2023; 1: off)."""
    clip: float = bounded(100.0, ge=0)
    """Bound on |latents| and |predicted x0| during sampling (0: no clipping)."""

    def problems(self) -> list[str]:
        """What the fields' own ranges cannot say: how they bound each other."""
        found = []
        if self.beta_start > self.beta_end:
            found.append(f"beta_start={self.beta_start!r} must be at most "
                         f"beta_end={self.beta_end!r}")
        if self.inference_steps > self.train_steps:
            found.append(f"inference_steps={self.inference_steps} must be at most "
                         f"train_steps={self.train_steps}")
        if self.eta > 0 and self.sampler not in ("ddim", "diffusers_ddim"):
            found.append(f"eta={self.eta!r} needs a DDIM sampler, not sampler={self.sampler!r}")
        if self.prediction == "epsilon" and self.zero_terminal_snr:
            found.append("prediction='epsilon' cannot recover x0 at the zero-SNR last step; use "
                         "sample or v_prediction, or set zero_terminal_snr=false")
        return found
