"""The base of diffusion heads: the next concept is sampled from a denoiser network by the
configured sampler (lcm's DDIM, or a diffusers scheduler: ``lcm.diffusion.samplers``).

A subclass says how to denoise given the generation state, twice:

* ``denoiser_for(trunk, state)``: the fast path generation uses, reusing what the context
  gives once per concept (a Two-Tower's cross-attention keys/values, a One-Tower's KV cache);
* ``uncached_denoiser(trunk, state)``: everything recomputed from ``state.context`` at every
  call, conditional and unconditional passes run separately. A session with ``uncached``
  takes it: the reference the fast path must match (tests) and the no-cache baseline of the
  generation benchmark.

Both return a ``lcm.diffusion.scheduler.Denoiser``: ``denoise(latents, t)``; with guidance the
latents come twice ([2B, D]), the first half to condition on the context, the second on none.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from lcm.diffusion.samplers import build_sampler
from lcm.diffusion.scheduler import DDIMScheduler, Denoiser
from lcm.model.heads import Backbone, GenerationState, HeadModule


class DiffusionHead(HeadModule):
    """A head whose options have ``cfg_dropout`` and ``diffusion`` (a DiffusionConfig)."""

    sampling_options = tuple(f"diffusion.{name}" for name in (
        "sampler", "inference_steps", "timestep_spacing", "eta", "initial_noise_scale",
        "guidance_scale", "guidance_rescale", "epsilon_scaling", "clip"))

    def __init__(self, config: Any, trunk: Any, concept_dim: int):
        super().__init__(config, trunk, concept_dim)
        self.scheduler = DDIMScheduler(self.config.diffusion)
        self.sampler = build_sampler(self.scheduler)

    def denoiser_for(self, backbone: Backbone, state: GenerationState) -> Denoiser:
        raise NotImplementedError

    def uncached_denoiser(self, backbone: Backbone, state: GenerationState) -> Denoiser:
        raise NotImplementedError

    def next_concept(self, backbone: Backbone, state: GenerationState) -> Tensor:
        """The sampler's chain from scaled noise, each document's noise from its own generator
        in ``state.generators``; (B, D) normalised x0."""
        denoiser = self.uncached_denoiser if state.uncached else self.denoiser_for
        return self.sampler.sample(denoiser(backbone, state), (state.batch_size, self.concept_dim),
                                   generators=state.generators, device=state.context.device,
                                   dtype=state.context.dtype)
