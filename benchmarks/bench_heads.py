"""What each vector head costs to train and to generate with, in concepts/s, in one run.

The heads of recipes/compare_heads_wiki.yaml that predict a concept vector (``mse``,
``two_tower``, ``energy`` as that recipe trains them) on the same trunk (``small`` with two
layers): a training step on 16 windows of 32 random concepts (a step's cost does not depend on
their values), and generation of 8 concepts for each of 4 documents after a 32-concept prompt,
two_tower at its default sampler (10 DDIM steps, guidance 3) and at the shipped summariser's
(models/summarizer: 40 steps). Every contender is timed in turns (``interleaved_best``), mse
the baseline of each row; energy's generation is also set against both two_tower samplers.
``decoder_ce`` trains through a decoder (``bench_decoder_ce``) and generates as mse does.
"""
from __future__ import annotations

import torch

from benchmarks.common import Result, adamw_step, interleaved_best, registry
from lcm.generate.loop import StopRules, generate
from lcm.interfaces import ConceptSpace
from lcm.model.lcm import build_model
from lcm.tasks.train import resolve_head

SPACE = ConceptSpace("bench", 384)
TRUNK = {"num_layers": 2}
HEADS = {"mse": {"name": "mse"}, "two_tower": {"name": "two_tower"},
         "energy": {"name": "energy", "samples": 4, "noise_dim": 64, "layers": 2,
                    "width": 128}}
SUMMARISER_SAMPLER = {"inference_steps": 40, "initial_noise_scale": 0.6, "guidance_rescale": 0.7}
GENERATING = {**HEADS, "two_tower, summariser's sampler": {"name": "two_tower",
                                                           "diffusion": SUMMARISER_SAMPLER}}


def head_model(head: dict):
    torch.manual_seed(0)
    return build_model("small", TRUNK, resolve_head(registry(), "small", head), SPACE)


def training_rates(batch: int, length: int, repeats: int) -> dict[str, float]:
    """Concepts/s of one AdamW step of each head on the same batch."""
    concepts = torch.randn(batch, length, SPACE.dim, generator=torch.Generator().manual_seed(0))
    steps = {}
    for name, head in HEADS.items():
        model = head_model(head).train()
        steps[name] = adamw_step(model, lambda model=model: model(concepts).loss)
        steps[name]()  # warm-up: allocations, optimiser state
    seconds = interleaved_best(steps, repeats)
    return {name: batch * (length - 1) / seconds[name] for name in steps}


def generation_rates(documents: int, prompt: int, new: int, repeats: int) -> dict[str, float]:
    """Generated concepts/s of each head continuing the same prompts."""
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randn(prompt, SPACE.dim, generator=gen) for _ in range(documents)]
    rules = StopRules(max_new_concepts=new, repetition_threshold=None)
    runs = {}
    for name, head in GENERATING.items():
        model = head_model(head).eval()
        runs[name] = lambda model=model: generate(model, prompts, rules, seed=0)
        runs[name]()  # warm-up
    seconds = interleaved_best(runs, repeats)
    return {name: documents * new / seconds[name] for name in runs}


def run(quick: bool = False) -> list[Result]:
    batch, length, new, repeats = (4, 8, 2, 1) if quick else (16, 32, 8, 3)
    trained = training_rates(batch, length, repeats)
    generated = generation_rates(4, 32, new, repeats)
    results = [Result("heads", f"{name}: training step", "concepts/s", rate, "mse head",
                      trained["mse"]) for name, rate in trained.items()]
    results += [Result("heads", f"{name}: generation", "concepts/s", rate, "mse head",
                       generated["mse"]) for name, rate in generated.items()]
    results += [Result("heads", "energy: generation", "concepts/s", generated["energy"],
                       f"{name} head", generated[name])
                for name in ("two_tower", "two_tower, summariser's sampler")]
    return results
