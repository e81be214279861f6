"""One decoding session: a batch of documents continued concept by concept.

The session owns the generation state (the context so far, the trunk's KV cache, the head's own
state) and is the only caller of a head's generation protocol: ``start`` reads the prompts,
then each ``propose`` asks the head for the next concept of every document and ``commit`` makes
the chosen ones (generated, or the true ones when teacher forcing) the next context position;
``keep`` drops documents that have stopped, so a batch costs only what its live documents do.

``uncached=True`` runs the same protocol without reusing anything: every commit re-reads the
whole context, and a diffusion head denoises with everything recomputed per pass (guidance's
two passes apart). It is the reference the caches must match (tests) and the no-cache baseline
of the generation benchmark.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lcm.model.heads import GenerationState, last_real
from lcm.model.randomness import RowGenerators


class DecodingSession:
    """Continue NORMALISED prompts ``context`` (B, S, D), real where ``mask`` (B, S), with
    ``model`` (a ConceptModel)."""

    def __init__(self, model: Any, context: Tensor, mask: Tensor,
                 generators: RowGenerators | None = None, uncached: bool = False):
        self.head, self.backbone = model.head, model.backbone
        self.state = GenerationState(context=context, context_mask=mask, generators=generators,
                                     uncached=uncached)

    def start(self) -> "DecodingSession":
        """Read the prompts (fills the caches, or nothing worth keeping when uncached)."""
        self.head.start(self.backbone, self.state)
        return self

    def propose(self) -> Tensor:
        """The head's next normalised concept of every document, (B, D)."""
        return self.head.next_concept(self.backbone, self.state)

    def commit(self, concepts: Tensor) -> None:
        """Make ``concepts`` (B, D) the next context position of every document."""
        state = self.state
        state.context = torch.cat([state.context, concepts[:, None]], dim=1)
        state.context_mask = F.pad(state.context_mask, (0, 1), value=True)
        if state.uncached:
            self.head.start(self.backbone, state)  # re-read the whole context
        else:
            self.head.append(self.backbone, state, concepts)
        state.step += 1

    def keep(self, rows: Tensor) -> None:
        """Continue only the documents ``rows`` (B',) long indices: the others have stopped
        and leave the batch, so later steps compute nothing for them."""
        state = self.state
        state.context = state.context.index_select(0, rows)
        state.context_mask = state.context_mask.index_select(0, rows)
        if state.generators is not None:
            state.generators = state.generators.select(rows.tolist())
        self.head.keep_rows(state, rows)

    def last_concepts(self) -> Tensor:
        """(B, D) each document's last real context concept."""
        return last_real(self.state.context, self.state.context_mask)
