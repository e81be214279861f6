"""Fixtures of the evaluation tests: tiny held-out shards (ShardWriter), a toy checkpoint
(save_checkpoint), an encoder that looks sentences up in those shards, and a tiny causal LM
saved and loaded through transformers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lcm.data.shards import Document, ShardWriter
from lcm.interfaces import Encoder
from lcm.model.checkpoint import save_checkpoint
from tests._model_fixtures import TOY_SPACE, toy_model, toy_normalizer

DOCUMENT_LENGTHS = (5, 3, 1, 7, 4)  # the 1-concept document has nothing to predict


@dataclass
class HeldOut:
    shards: Path
    checkpoint: Path
    documents: list[Document]


def sentence(doc: int, position: int) -> str:
    return f"Document {doc} says thing number {position}."


def write_shards(directory: Path, lengths=DOCUMENT_LENGTHS, seed: int = 0) -> list[Document]:
    """Documents of random toy concepts (a random walk, so neighbours are related)."""
    rng = np.random.default_rng(seed)
    documents = []
    with ShardWriter(directory, TOY_SPACE, encoder="test", docs_per_shard=2) as writer:
        for doc, length in enumerate(lengths):
            steps = rng.normal(0.0, 1.0, size=(length, TOY_SPACE.dim))
            vectors = (np.cumsum(steps, axis=0) + 0.5).astype(np.float16)
            document = Document(f"doc{doc}", [sentence(doc, i) for i in range(length)], vectors)
            writer.write(document)
            documents.append(document)
    return documents


def held_out(tmp_path: Path) -> HeldOut:
    documents = write_shards(tmp_path / "shards")
    checkpoint = save_checkpoint(tmp_path / "ckpt", toy_model(seed=3), toy_normalizer())
    return HeldOut(tmp_path / "shards", checkpoint, documents)


class LookupEncoder(Encoder):
    """Encodes a sentence of the held-out documents to its stored vector (a test stand-in for a
    real encoder of the toy space)."""

    name = "lookup"

    def __init__(self, documents: list[Document]):
        super().__init__()
        self.table = {s: v for d in documents for s, v in zip(d.sentences, d.vectors)}

    def encode(self, inputs):
        return torch.tensor(np.stack([self.table[s] for s in inputs]).astype(np.float32))


def tiny_causal_lm(directory: Path, texts: list[str]) -> Path:
    """A 1-layer GPT-2 and a byte-level BPE tokenizer trained on ``texts``, saved as a
    transformers model directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    tokenizer.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=64, n_embd=16, n_layer=1,
                        n_head=2)
    GPT2LMHeadModel(config).save_pretrained(directory)
    wrapped.save_pretrained(directory)
    return directory
