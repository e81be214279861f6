"""Options of the diffusion process, shared by every diffusion head.

Kept apart from the arithmetic (``scheduler.py``) and free of torch, so a head's recipe
``Config`` can embed ``DiffusionConfig`` while listing plugins and validating recipes stays
fast. Defaults are those of the LCM reference / paper (see LCM_BRIEF.md, "Diffusion").
"""
from __future__ import annotations

from dataclasses import dataclass

from lcm.config import choice
from lcm.errors import UserError

SCHEDULES = ("cosine", "quadratic", "sigmoid", "linear")
PREDICTIONS = ("sample", "epsilon", "v_prediction")
SPACINGS = ("trailing", "linspace", "leading")
TIMESTEP_SAMPLINGS = ("uniform", "beta")
LOSS_WEIGHTINGS = ("none", "clamp_snr")


@dataclass
class DiffusionConfig:
    """How concepts are noised in training and denoised (DDIM) in generation."""

    # --- the noise schedule (fixed at training time)
    train_steps: int = 100
    """Number of diffusion steps T the model is trained with."""
    schedule: str = choice("cosine", SCHEDULES)
    """How the cumulative signal level falls over t: cosine, quadratic, sigmoid or linear."""
    cosine_offset: float = 0.008
    """The ``s`` of the cosine schedule (Nichol & Dhariwal): keeps beta small near t=0."""
    beta_start: float = 0.0001
    """First beta of the linear and quadratic schedules."""
    beta_end: float = 0.02
    """Last beta of the linear and quadratic schedules."""
    quadratic_exponent: float = 2.0
    """The quadratic schedule interpolates beta**(1/exponent) linearly (2: scaled-linear)."""
    sigmoid_alpha: float = 1.5
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
    beta_sampling_a: float = 0.8
    """``a`` of the Beta timestep distribution (a < 1 favours small t)."""
    beta_sampling_b: float = 1.0
    """``b`` of the Beta timestep distribution."""
    loss_weighting: str = choice("none", LOSS_WEIGHTINGS)
    """Per-step loss weights: none, or min-SNR (the SNR clamped at ``snr_clamp``)."""
    snr_clamp: float = 5.0
    """The gamma of min-SNR weighting: weights are min(SNR(t), gamma) in x0 terms."""

    # --- generation (DDIM)
    inference_steps: int = 40
    """Denoising steps at generation time (at most ``train_steps``)."""
    timestep_spacing: str = choice("trailing", SPACINGS)
    """Which of the T steps are visited (Lin et al. 2023, Table 2)."""
    eta: float = 0.0
    """DDIM stochasticity: 0 is deterministic DDIM, 1 is DDPM-like."""
    initial_noise_scale: float = 0.6
    """Standard deviation of the starting noise."""
    guidance_scale: float = 3.0
    """Classifier-free guidance weight w (1: no guidance, no unconditional pass)."""
    guidance_rescale: float = 0.7
    """Blend towards the conditional prediction's std (Lin et al. 2023, Sec. 3.4)."""
    epsilon_scaling: float = 1.00045
    """Divide the predicted noise by this lambda in each step (Ning et al. 2023; 1: off)."""
    clip: float = 100.0
    """Bound on |latents| and |predicted x0| during sampling (0: no clipping)."""

    def check(self) -> "DiffusionConfig":
        """Raise a UserError naming the first invalid option and what is allowed."""
        for name, allowed in _RESTRICTED.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"diffusion option {name}={getattr(self, name)!r} is not one "
                                f"of {', '.join(allowed)}")
        positive = ("train_steps", "inference_steps", "quadratic_exponent", "sigmoid_alpha",
                    "beta_sampling_a", "beta_sampling_b", "snr_clamp", "epsilon_scaling")
        for name in positive:
            if not getattr(self, name) > 0:
                raise UserError(f"diffusion option {name}={getattr(self, name)!r} must be > 0")
        if not 0 <= self.cosine_offset:
            raise UserError(f"diffusion option cosine_offset={self.cosine_offset!r} must be >= 0")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise UserError(f"diffusion options beta_start={self.beta_start!r}, beta_end="
                            f"{self.beta_end!r} must satisfy 0 < beta_start <= beta_end < 1")
        if self.inference_steps > self.train_steps:
            raise UserError(f"diffusion option inference_steps={self.inference_steps} must be "
                            f"at most train_steps={self.train_steps}")
        for name in ("eta", "initial_noise_scale", "guidance_rescale", "clip"):
            if getattr(self, name) < 0:
                raise UserError(f"diffusion option {name}={getattr(self, name)!r} must be >= 0")
        if self.guidance_rescale > 1:
            raise UserError(f"diffusion option guidance_rescale={self.guidance_rescale!r} must "
                            "be in [0, 1]")
        if self.prediction == "epsilon" and self.zero_terminal_snr:
            raise UserError("diffusion option prediction='epsilon' cannot recover x0 at the "
                            "zero-SNR last step; use sample or v_prediction, or set "
                            "zero_terminal_snr=false")
        return self


_RESTRICTED = {"schedule": SCHEDULES, "prediction": PREDICTIONS, "timestep_spacing": SPACINGS,
               "timestep_sampling": TIMESTEP_SAMPLINGS, "loss_weighting": LOSS_WEIGHTINGS}
