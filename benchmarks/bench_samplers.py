"""Quality against diffusion steps: each sampler at 5/10/20/40 steps on held-out Wikipedia.

For the trained ``two_tower`` and ``one_tower`` models of the wiki recipes (random weights would
make every quality figure meaningless), every held-out document is predicted concept by concept
from its true context (teacher forcing, as ``evaluate`` does), with each sampler and step count
set as a generate recipe sets them (``sampling: {diffusion: {sampler, inference_steps}}``):

* ℓ2 to the true next concept, contrastive accuracy (CA, 0.5 = chance) and round-trip cosine
  (cosine of the prediction to its nearest training sentence: retrieval decoding, whose
  re-encoding is that sentence's stored vector) in the encoder's space;
* concepts/s of the whole teacher-forced pass (batch 16, one thread).

The baseline of every row is lcm's DDIM at 40 steps (the reference, the old default) in the
same run; it also runs with two more seeds, and the spread of the three is the noise a sampler
must stay within. Needs ``runs/wiki`` (prepare_wiki, fit_normalizer_wiki, the held-out shards,
train_two_tower_wiki, train_one_tower_wiki: see README, "Benchmarks").
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import Result, registry
from lcm.data.shards import iter_documents
from lcm.evaluate.concept_metrics import contrastive_accuracy, l2_distances
from lcm.evaluate.pretraining import ReadCounts, model_predictor, windows
from lcm.generate.loop import pad_prompts
from lcm.iterutils import batched
from lcm.model.checkpoint import load_checkpoint

WIKI = Path("runs/wiki")
MODELS = {"two_tower": WIKI / "model_two_tower", "one_tower": WIKI / "model_one_tower"}
HELD_OUT, BANK = WIKI / "heldout", WIKI / "shards"
SAMPLERS = ("ddim", "dpm_solver_2m", "unipc", "euler")
STEPS = (5, 10, 20, 40)
NOISE_SEEDS = (0, 1, 2)
WINDOW, BATCH = 32, 16


@dataclass
class Quality:
    """One configuration's scores on the held-out predictions."""

    l2: float
    ca: float
    round_trip: float
    concepts_per_s: float


def held_out_batches(limit: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded (B, T, D) windows of the held-out documents and their masks."""
    docs = islice(iter_documents(str(HELD_OUT)), limit)
    return [pad_prompts([torch.from_numpy(w.vectors) for w in batch], side="right")
            for batch in batched(windows(docs, WINDOW, ReadCounts()), BATCH)]


def bank_vectors() -> torch.Tensor:
    """(N, D) unit vectors of every training sentence: the retrieval decoder's bank."""
    vectors = np.concatenate([d.vectors for d in iter_documents(str(BANK))]).astype(np.float32)
    return F.normalize(torch.from_numpy(vectors), dim=-1)


def score(model_dir: Path, sampler: str, steps: int, seed: int,
          batches: list[tuple[torch.Tensor, torch.Tensor]], bank: torch.Tensor) -> Quality:
    """Teacher-forced predictions of every held-out position with this sampler and step count."""
    loaded = load_checkpoint(model_dir, registry(),
                             sampling={"diffusion": {"sampler": sampler, "inference_steps": steps}})
    predict = model_predictor(loaded, seed)
    l2, ca, round_trip, count, seconds = [], [], [], 0, 0.0
    for offset, (concepts, mask) in enumerate(batches):
        start = time.perf_counter()
        predicted = predict(concepts, mask)  # (B, T-1, D)
        seconds += time.perf_counter() - start
        if not torch.isfinite(predicted).all():
            raise RuntimeError(f"{model_dir.name} {sampler} {steps} steps predicted NaN/inf")
        valid = mask[:, 1:]
        flat, target = predicted[valid], concepts[:, 1:][valid]
        sequence = torch.arange(len(concepts))[:, None].expand_as(valid)[valid] + offset * BATCH
        l2 += l2_distances(flat, target).tolist()
        shares = contrastive_accuracy(flat, target, sequence)
        ca += shares[~shares.isnan()].tolist()
        round_trip += (F.normalize(flat, dim=-1) @ bank.T).max(dim=1).values.tolist()
        count += len(flat)
    return Quality(statistics.fmean(l2), statistics.fmean(ca), statistics.fmean(round_trip),
                   count / seconds)


def run(quick: bool = False) -> list[Result]:
    missing = [str(p) for p in (*MODELS.values(), HELD_OUT, BANK) if not p.exists()]
    if missing:
        print(f"bench_samplers: skipped, {', '.join(missing)} missing (run the wiki recipes "
              "first: README, Benchmarks)")
        return []
    torch.set_num_threads(1)
    batches, bank = held_out_batches(8 if quick else None), bank_vectors()
    samplers, steps = (("ddim", "dpm_solver_2m"), (5, 40)) if quick else (SAMPLERS, STEPS)
    results = []
    for head, model_dir in MODELS.items():
        reference = [score(model_dir, "ddim", 40, seed, batches, bank)
                     for seed in (NOISE_SEEDS[:1] if quick else NOISE_SEEDS)]
        base = reference[0]
        spread = {k: max(getattr(q, k) for q in reference) - min(getattr(q, k) for q in reference)
                  for k in ("l2", "ca", "round_trip")}
        print(f"{head}: DDIM-40 over seeds {NOISE_SEEDS[:len(reference)]}: "
              + ", ".join(f"{k} spread {v:.4f}" for k, v in spread.items()))
        for sampler in samplers:
            for n in steps:
                q = base if (sampler, n) == ("ddim", 40) else score(model_dir, sampler, n, 0,
                                                                     batches, bank)
                label = f"{head}, {sampler} {n} steps"
                quality = (f"{label}: ℓ2 (CA {q.ca:.4f}, round trip {q.round_trip:.4f}; "
                           f"DDIM-40 CA {base.ca:.4f}, round trip {base.round_trip:.4f}; DDIM-40 "
                           f"seed spread ℓ2 {spread['l2']:.4f}, CA {spread['ca']:.4f}, "
                           f"round trip {spread['round_trip']:.4f})")
                results += [
                    Result("samplers", quality, "ℓ2", q.l2, "DDIM-40 (lcm's reference)", base.l2,
                           higher_is_better=False),
                    Result("samplers", f"{label}: speed", "concepts/s", q.concepts_per_s,
                           "DDIM-40 (lcm's reference)", base.concepts_per_s)]
    return results
