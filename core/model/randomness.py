"""One random generator per document of a generation batch.

A head that samples (diffusion noise, a codebook draw) takes each document's randomness from
that document's own generator, so what a document generates does not depend on which other
documents share its batch, or on when they stop and leave it.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


class RowGenerators:
    """Generators for the rows of a batch, row ``i`` drawing only from ``generators[i]``."""

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = list(generators)

    @classmethod
    def seeded(cls, seed: int | None, rows: int,
               device: torch.device | str = "cpu") -> "RowGenerators":
        """Row ``i`` seeded with ``seed + i`` (so document i alone, seeded ``seed + i``, draws
        the same); ``seed=None``: nondeterministic."""
        generators = [torch.Generator(device=device) for _ in range(rows)]
        for i, generator in enumerate(generators):
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed + i)
        return cls(generators)

    def __len__(self) -> int:
        return len(self.generators)

    def select(self, rows: Sequence[int]) -> "RowGenerators":
        """The generators of ``rows``, in that order (documents that stay in the batch)."""
        return RowGenerators([self.generators[i] for i in rows])

    def randn(self, shape: Sequence[int], device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> Tensor:
        """(rows, *shape) standard noise, each row from its own generator (on the
        generator's device, so seeds reproduce, then moved to ``device``)."""
        rows = [torch.randn(tuple(shape), generator=g, device=g.device, dtype=dtype)
                for g in self.generators]
        return torch.stack(rows).to(device)

    def multinomial(self, probabilities: Tensor) -> Tensor:
        """(rows,) one index drawn per row of ``probabilities`` (rows, C)."""
        draws = [torch.multinomial(p[None], 1, generator=g)[0, 0]
                 for p, g in zip(probabilities, self.generators)]
        return torch.stack(draws)
