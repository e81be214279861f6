"""A tiny learned decoder that reads the synthetic head task's concepts, for ``decoder_ce``.

The head learns through a frozen decoder, so its tests need a decoder whose token likelihood
says something about the concept: this one is a random-weight causal BERT with a word-level
tokenizer of the task's own few words (a real BERT tokenizer, so the model stays tiny), trained
in-process for a few seconds to write a concept's sign pattern as words, then saved and loaded
through the ``learned`` plugin like a user's model.
"""
from __future__ import annotations

from pathlib import Path

import torch

from lcm.interfaces import ConceptSpace
from lcm.plugins.learned.casing import Truecaser
from lcm.plugins.learned.model import ConceptDecoderModel, save_model
from lcm.plugins.learned.options import DecoderArch

WORDS = (("red", "blue"), ("cat", "dog"), ("hot", "cold"), ("up", "down"))
"""Word i of a concept's sentence says the sign of its dimension i."""


def sentence_of(concept: torch.Tensor) -> str:
    """The words of a (normalised) concept's first dimensions' signs."""
    return " ".join(pair[int(value > 0)] for pair, value in zip(WORDS, concept.tolist()))


def word_tokenizer(directory: Path) -> Path:
    """A BERT tokenizer folder whose vocabulary is the special tokens and ``WORDS``."""
    from transformers import BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for pair in WORDS for w in pair]
    (directory / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    BertTokenizerFast(str(directory / "vocab.txt")).save_pretrained(str(directory))
    return directory


def trained_decoder(directory: Path, space: ConceptSpace, normalizer, steps: int = 150) -> Path:
    """Train (once per directory) and save a decoder of ``space`` that reads raw concepts, the
    de-normalised ones a ``decoder_ce`` head hands it; ``steps=0``: an untrained one."""
    if (directory / "decoder.json").is_file():
        return directory
    torch.manual_seed(0)
    arch = DecoderArch(base="random", tokenizer=str(word_tokenizer(directory.with_name(
        directory.name + "-tokenizer"))), prefix_slots=1, prefix_hidden=64, max_tokens=8,
        hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    model = ConceptDecoderModel.build(arch, space)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        concepts = torch.randn(64, space.dim)
        tokens = model.tokenize([sentence_of(c) for c in concepts])
        loss = model(normalizer.denormalize(concepts), tokens["input_ids"], tokens["attention_mask"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_model(model.eval(), directory, Truecaser({}), {"steps": steps})
    return directory
