"""Generation speed of each head, in concepts per second, after a 128-concept prompt.

Comparisons, each in the same run, measurement and baseline timed in turns:

* KV cache vs recomputation: the shared loop with the head's caches, against an ``uncached``
  decoding session (``lcm.generate.session``): every new concept re-reads the whole prefix, and a
  diffusion head's every denoising pass (the default 10 DDIM steps per concept, x2 with
  guidance) recomputes the context — what a head without caches costs. For the diffusion heads
  the cached path still pays the denoiser passes, so the gap is the prefix work they avoid.
* Guidance vs none (diffusion heads): guidance_scale 3 (conditional and unconditional passes
  batched together) against guidance_scale 1 (no unconditional pass).
* Mixed stops: a batch of 8 documents of which 2 stop after 1 concept, 2 after 2, 2 after 4
  and 2 run to 16 (stops forced at these steps, so the workload is fixed), with stopped
  documents leaving the batch (``DecodingSession.keep``, what ``generate`` does) against the
  old behaviour of computing every row until the whole batch ends; a batch of the 2 longest
  documents alone is the floor.

Model: the ``small`` trunk (d=256, 4 layers), 384-d concepts (MiniLM's space), 4 documents.
"""
from __future__ import annotations

import torch

from benchmarks.common import Result, best_seconds, interleaved_best, registry
from lcm.generate.loop import StopRules, generate, pad_prompts
from lcm.generate.session import DecodingSession
from lcm.interfaces import ConceptSpace
from lcm.model.lcm import build_model
from lcm.tasks.train import resolve_head

SPACE = ConceptSpace("bench", 384)
CONTEXT = 128
DOCUMENTS = 4
HEADS = ("mse", "two_tower", "one_tower")
DIFFUSION_HEADS = ("two_tower", "one_tower")
MIXED_STOPS = (1, 1, 2, 2, 4, 4, 16, 16)
"""Concepts each document of the mixed-stop batch generates."""


def generation_rate(model, prompts: list[torch.Tensor], new: int, repeats: int,
                    recompute: bool = False) -> float:
    """Generated concepts per second (best of ``repeats``)."""
    seconds = best_seconds(continuing(model, prompts, new, recompute), repeats)
    return len(prompts) * new / seconds


def continuing(model, prompts: list[torch.Tensor], new: int, recompute: bool = False):
    """A callable continuing ``prompts`` by ``new`` concepts each (no early stop)."""
    rules = StopRules(max_new_concepts=new, repetition_threshold=None)
    return lambda: generate(model, prompts, rules, seed=0, uncached=recompute)


def rates(works: dict[str, tuple], repeats: int) -> dict[str, float]:
    """Concepts/s of each ``(model, prompts, new, recompute)``, timed in turns."""
    seconds = interleaved_best({name: continuing(*work) for name, work in works.items()}, repeats)
    return {name: len(works[name][1]) * works[name][2] / seconds[name] for name in works}


def forced_stops(model, prompts: list[torch.Tensor], stops: tuple[int, ...], drop: bool) -> None:
    """Continue ``prompts``, document i for ``stops[i]`` concepts; ``drop``: stopped documents
    leave the batch, else their rows are computed (and ignored) until the last one stops."""
    context, mask = pad_prompts(prompts)
    with torch.no_grad():
        session = DecodingSession(model, context, mask).start()
        live = list(range(len(prompts)))
        for step in range(max(stops)):
            concepts = session.propose()
            if step == max(stops) - 1:
                return
            going = [row for row, doc in enumerate(live) if stops[doc] > step + 1]
            if drop and len(going) < len(live):
                rows = torch.tensor(going)
                session.keep(rows)
                concepts, live = concepts[rows], [live[row] for row in going]
            session.commit(concepts)


def mixed_stop_results(head: str, prompts: list[torch.Tensor], repeats: int) -> list[Result]:
    """Seconds for the mixed-stop batch with and without dropping, and the longest alone."""
    model = build(head)
    batch = [prompts[i % len(prompts)] for i in range(len(MIXED_STOPS))]
    longest = tuple(n for n in MIXED_STOPS if n == max(MIXED_STOPS))
    forced_stops(model, batch, MIXED_STOPS, drop=True)  # warm-up
    seconds = interleaved_best({
        "drop": lambda: forced_stops(model, batch, MIXED_STOPS, drop=True),
        "keep": lambda: forced_stops(model, batch, MIXED_STOPS, drop=False),
        "alone": lambda: forced_stops(model, batch[-len(longest):], longest, drop=True)}, repeats)
    return [Result("generation", f"{head}: mixed-stop batch {MIXED_STOPS}, stopped documents "
                   f"leave (the {len(longest)} longest alone: {seconds['alone']:.3g} s)", "s",
                   seconds["drop"], "every row computed to the end", seconds["keep"],
                   higher_is_better=False)]


def build(head: str, guidance_scale: float | None = None):
    torch.manual_seed(0)
    spec = {"name": head}
    if guidance_scale is not None:
        spec["diffusion"] = {"guidance_scale": guidance_scale}
    return build_model("small", {}, resolve_head(registry(), "small", spec), SPACE).eval()


def run(quick: bool = False) -> list[Result]:
    new, repeats = (1, 1) if quick else (8, 3)
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
        got = rates({"cached": (model, prompts, new, False),
                     "recomputed": (model, prompts, uncached_new, True)}, repeats)
        results.append(Result("generation", f"{head}: KV cache, {CONTEXT}-concept prompt",
                              "concepts/s", got["cached"], "no cache (recompute prefix)",
                              got["recomputed"]))
    for head in DIFFUSION_HEADS:
        got = rates({"guided": (warmed(build(head, 3.0)), prompts, new, False),
                     "plain": (warmed(build(head, 1.0)), prompts, new, False)}, repeats)
        results.append(Result("generation", f"{head}: guidance 3 (batched)", "concepts/s",
                              got["guided"], "no guidance", got["plain"]))
    for head in ("mse", "two_tower"):
        results += mixed_stop_results(head, prompts, repeats)
    return results
