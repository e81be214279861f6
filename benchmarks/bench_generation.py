"""Generation speed of each head, in concepts per second, after a 128-concept prompt.

Two comparisons per head, each in the same run:

* KV cache vs recomputation: the shared loop with the head's caches, against an ``uncached``
  decoding session (``lcm.generate.session``): every new concept re-reads the whole prefix, and a
  diffusion head's every denoising pass (40 per concept, x2 with guidance) recomputes the
  context — what a head without caches costs. For the diffusion heads the cached path still
  pays the 40 denoiser passes, so the gap is the prefix work those passes avoid.
* Guidance vs none (diffusion heads): guidance_scale 3 (conditional and unconditional passes
  batched together) against guidance_scale 1 (no unconditional pass).

Model: the ``small`` trunk (d=256, 4 layers), 384-d concepts (MiniLM's space), 4 documents.
"""
from __future__ import annotations

import time

import torch

from benchmarks.common import Result, registry
from lcm.generate.loop import StopRules, generate
from lcm.interfaces import ConceptSpace
from lcm.model.lcm import build_model
from lcm.tasks.train import resolve_head

SPACE = ConceptSpace("bench", 384)
CONTEXT = 128
DOCUMENTS = 4
HEADS = ("mse", "two_tower", "one_tower")
DIFFUSION_HEADS = ("two_tower", "one_tower")


def generation_rate(model, prompts: list[torch.Tensor], new: int, repeats: int,
                    recompute: bool = False) -> float:
    """Generated concepts per second (best of ``repeats``)."""
    rules = StopRules(max_new_concepts=new, repetition_threshold=None)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        generate(model, prompts, rules, seed=0, uncached=recompute)
        best = max(best, len(prompts) * new / (time.perf_counter() - start))
    return best


def build(head: str, guidance_scale: float | None = None):
    torch.manual_seed(0)
    spec = {"name": head}
    if guidance_scale is not None:
        spec["diffusion"] = {"guidance_scale": guidance_scale}
    return build_model("small", {}, resolve_head(registry(), "small", spec), SPACE).eval()


def run(quick: bool = False) -> list[Result]:
    new, repeats = (1, 1) if quick else (8, 2)
    uncached_new = 1 if quick else 2  # without caches a diffusion concept takes ~1 s
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randn(CONTEXT, SPACE.dim, generator=gen) for _ in range(DOCUMENTS)]

    def warmed(model):
        """Every model is run once before it is timed: first calls pay for allocations."""
        if not quick:
            generation_rate(model, prompts, 1, 1)
        return model

    results = []
    for head in HEADS:
        model = warmed(build(head))
        cached = generation_rate(model, prompts, new, repeats)
        recomputed = generation_rate(model, prompts, uncached_new, 1, recompute=True)
        results.append(Result("generation", f"{head}: KV cache, {CONTEXT}-concept prompt",
                              "concepts/s", cached, "no cache (recompute prefix)", recomputed))
    for head in DIFFUSION_HEADS:
        guided = generation_rate(warmed(build(head, 3.0)), prompts, new, repeats)
        plain = generation_rate(warmed(build(head, 1.0)), prompts, new, repeats)
        results.append(Result("generation", f"{head}: guidance 3 (batched)", "concepts/s",
                              guided, "no guidance", plain))
    return results
