"""A synthetic next-concept task and a tiny training loop for the head tests.

Each document starts from a random concept; the next one is a fixed rotation of the current
one plus noise, ``x_{t+1} = (Q x_t + s e) / sqrt(1 + s^2)``, so every concept is roughly
standard normal (as normalised concepts are) and the context tells a model most of the next
concept but not all of it. Each concept has a sentence too (words for the signs of its first
dimensions), for heads that learn from text through a decoder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lcm.interfaces import ConceptSpace
from lcm.model.lcm import ConceptModel
from tests._decoder_ce_fixtures import sentence_of
from tests._head_options import head_spec
from tests._model_fixtures import model_of, toy_normalizer

SPACE = ConceptSpace("head_test_space", 8)


@dataclass
class SequenceTask:
    concepts: torch.Tensor  # (N, T, D) normalised concepts
    mask: torch.Tensor  # (N, T) True: a real concept
    sentences: list[list[str]]  # (N, T) each concept's sentence

    def __len__(self) -> int:
        return self.concepts.shape[0]

    def rows(self, rows) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
        """``(concepts, mask, sentences)`` of some documents (a slice or index tensor)."""
        indices = range(len(self))[rows] if isinstance(rows, slice) else rows.tolist()
        return self.concepts[rows], self.mask[rows], [self.sentences[i] for i in indices]

    def split(self, held_out: int) -> tuple["SequenceTask", "SequenceTask"]:
        return (SequenceTask(*self.rows(slice(held_out, None))),
                SequenceTask(*self.rows(slice(None, held_out))))


def rotation_task(documents: int, length: int, dim: int = SPACE.dim, noise: float = 0.3,
                  seed: int = 0) -> SequenceTask:
    """Documents of the rotation-plus-noise process; the last few are shortened (padding)."""
    gen = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen))
    concepts = torch.empty(documents, length, dim)
    concepts[:, 0] = torch.randn(documents, dim, generator=gen)
    for t in range(1, length):
        step = concepts[:, t - 1] @ rotation.T + noise * torch.randn(documents, dim, generator=gen)
        concepts[:, t] = step / (1 + noise ** 2) ** 0.5
    mask = torch.ones(documents, length, dtype=torch.bool)
    mask[-max(documents // 8, 1):, length // 2:] = False  # some right-padded documents
    return SequenceTask(concepts, mask, [[sentence_of(c) for c in doc] for doc in concepts])


def toy_head_model(name: str, tmp_path, seed: int = 0, **head_options) -> ConceptModel:
    """The `toy` architecture with head ``name`` (and what it needs in tests), in eval mode."""
    spec = {**head_spec(name, tmp_path, SPACE.dim), **head_options}
    torch.manual_seed(seed)
    model = model_of("toy", {}, spec, SPACE)
    model.head.bind_normalizer(toy_normalizer(SPACE))  # what save_checkpoint stores with it
    return model.eval()


def fit(model: ConceptModel, task: SequenceTask, steps: int, lr: float = 3e-3,
        batch_size: int = 16, seed: int = 0) -> None:
    """AdamW on random mini-batches of ``task``; leaves the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        rows = torch.randint(len(task), (batch_size,), generator=gen)
        concepts, mask, sentences = task.rows(rows)
        loss = model(concepts, mask, sentences=sentences).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def seeded_loss(model: ConceptModel, task: SequenceTask, seed: int = 0) -> float:
    """Eval-mode loss on ``task`` with the global RNG (diffusion noise, timesteps) seeded."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return float(model(task.concepts, task.mask, sentences=task.sentences).loss)
