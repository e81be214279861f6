"""What learning through the decoder costs: a training step of the decoder_ce head (the shipped
decoder's forward and backward per scored sentence) against the mse and two_tower heads, on
the same trunk (``small`` with two layers, as recipes/compare_heads_wiki.yaml trains them) and
the same batch of held-out Wikipedia sentences (data/wiki_heldout.jsonl), in concepts/s.

The concepts are random (a step's cost does not depend on their values); the sentences are real,
since the decoder's cost grows with their tokens. decoder_ce is timed scoring every next
sentence and scoring ``max_sentences=16`` of them (the recipe's setting). Skipped, with one row
saying so, where the shipped decoder (models/decoder_minilm) is missing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import Result, adamw_step, best_seconds, registry
from lcm.data.normalizer import RobustScaler
from lcm.data.segment import split_sentences
from lcm.interfaces import ConceptSpace
from lcm.model.lcm import build_model
from lcm.tasks.train import resolve_head

REPO = Path(__file__).resolve().parent.parent
DECODER = REPO / "models" / "decoder_minilm"
HELD_OUT = REPO / "data" / "wiki_heldout.jsonl"
SPACE = ConceptSpace("minilm", 384)
TRUNK = {"num_layers": 2}


def windows(count: int, length: int) -> list[list[str]]:
    """``count`` runs of ``length`` consecutive held-out sentences."""
    sentences = [s for line in HELD_OUT.read_text().splitlines()
                 for s in split_sentences(json.loads(line)["text"])]
    return [sentences[i * length:(i + 1) * length] for i in range(count)]


def head_model(head: dict, normalizer: RobustScaler):
    spec = resolve_head(registry(), "small", head)
    model = build_model("small", TRUNK, spec, SPACE).train()
    model.head.bind_normalizer(normalizer)
    return model


def run(quick: bool = False) -> list[Result]:
    if not DECODER.is_dir():
        return [Result("decoder_ce", f"skipped: {DECODER} is missing", "concepts/s", 0.0, "-", 0.0)]
    batch, length, repeats = (4, 4, 1) if quick else (16, 5, 3)
    rng = np.random.default_rng(0)
    normalizer = RobustScaler.fit(rng.normal(size=(512, SPACE.dim)) * 0.05, SPACE)
    sentences = windows(batch, length)
    concepts = torch.randn(batch, length, SPACE.dim, generator=torch.Generator().manual_seed(0))
    predicted = batch * (length - 1)
    decoder = {"name": "learned", "model": str(DECODER)}
    heads = [("mse", {"name": "mse"}), ("two_tower", {"name": "two_tower"}),
             ("decoder_ce, 16 sentences", {"name": "decoder_ce", "decoder": decoder,
                                          "max_sentences": 16}),
             (f"decoder_ce, all {predicted}", {"name": "decoder_ce", "decoder": decoder})]
    results: list[Result] = []
    baseline = None
    for label, head in heads:
        torch.manual_seed(0)
        model = head_model(head, normalizer)
        step = adamw_step(model, lambda: model(concepts, sentences=sentences).loss)
        step()  # warm-up: allocations, optimiser state, the decoder's weights
        rate = predicted / best_seconds(step, repeats)
        baseline = baseline or rate
        results.append(Result("decoder_ce", f"{label}: training step", "concepts/s", rate,
                              "mse head", baseline))
    return results
