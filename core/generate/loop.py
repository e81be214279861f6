"""The generation loop every head shares: continue a batch of documents concept by concept.

Prompts and continuations are in the encoder's own space; the model's normaliser (the
pipeline's, passed as ``normalizer``) maps them in and out, so no caller normalises by hand.
A ``DecodingSession`` reads the prompt once (a trunk pass that fills the KV cache), then each step
proposes the next concept of every document and commits it (one cached trunk step). A document
stops when its new concept is close to the end concept (cosine in the ORIGINAL, de-normalised
space, as the encoder produced it), when it repeats the previous concept, or after
``max_new_concepts``. The end or repeated concept itself is not part of the output. A stopped
document leaves the batch (its rows of every cache are dropped), so the others run as fast as a
batch of the live documents alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lcm.generate.session import DecodingSession
from lcm.model.heads import last_real
from lcm.model.randomness import RowGenerators

if TYPE_CHECKING:
    from lcm.interfaces import Normalizer

STOP_END = "end"
STOP_REPETITION = "repetition"
STOP_MAX_LENGTH = "max_length"


@dataclass
class StopRules:
    """When a document's continuation ends."""

    max_new_concepts: int = 32
    """Upper bound on generated concepts per document."""
    end_concept: Tensor | None = None
    """(D,) encoding of the end sentence (e.g. "End of text."), ORIGINAL space; None: unused."""
    end_threshold: float = 0.9
    """Stop when cosine(new, end_concept) exceeds this."""
    repetition_threshold: float | None = 0.9
    """Stop when cosine(new, previous concept) exceeds this; None disables."""


@dataclass
class Continuation:
    """What one document got: its new concepts (ORIGINAL space) and why it stopped."""

    concepts: Tensor  # (n, D)
    stop_reason: str


def pad_prompts(prompts: Sequence[Tensor], side: str = "left") -> tuple[Tensor, Tensor]:
    """Stack (L_i, D) prompts into (B, S, D) with a (B, S) mask of real concepts."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', not {side!r}")
    if not prompts or any(p.shape[0] == 0 for p in prompts):
        raise ValueError("every document needs at least one prompt concept")
    longest, dim = max(p.shape[0] for p in prompts), prompts[0].shape[1]
    batch = prompts[0].new_zeros(len(prompts), longest, dim)
    mask = torch.zeros(len(prompts), longest, dtype=torch.bool, device=prompts[0].device)
    for i, prompt in enumerate(prompts):
        slots = slice(longest - len(prompt), longest) if side == "left" else slice(0, len(prompt))
        batch[i, slots], mask[i, slots] = prompt, True
    return batch, mask


class _Unscaled:
    """The normaliser of a model trained on raw concepts (and of tests' bare models)."""

    @staticmethod
    def normalize(x: Tensor) -> Tensor:
        return x

    @staticmethod
    def denormalize(x: Tensor) -> Tensor:
        return x


@torch.no_grad()
def generate(model: Any, prompts: Sequence[Tensor], rules: StopRules, *,
             normalizer: "Normalizer | None" = None, seed: int | None = 0,
             padding_side: str = "left", uncached: bool = False) -> list[Continuation]:
    """Continue each prompt (L_i, D), in the encoder's space, with ``model`` (a ConceptModel).

    ``normalizer`` (the one the model was trained with; None: none) maps the prompts into the
    model's space and each new concept back, where the stopping rules are checked and in which
    the continuations are returned. ``seed`` seeds heads that
    sample, document i with ``seed + i`` (None: nondeterministic), so a document continues the
    same in any batch. A document that stops leaves the batch at once. ``uncached``: recompute
    everything at every step (see ``lcm.generate.session``).
    """
    model.eval()
    device = next(model.parameters()).device
    scaler = normalizer or _Unscaled()
    context, mask = pad_prompts([scaler.normalize(p).to(device) for p in prompts], padding_side)
    batch = len(prompts)
    session = DecodingSession(model, context, mask, RowGenerators.seeded(seed, batch, device),
                              uncached).start()

    max_steps = max(min(rules.max_new_concepts, model.config.max_seq_len - context.shape[1]), 0)
    previous = scaler.denormalize(last_real(context, mask))  # (B', D), original space
    end = rules.end_concept.to(device, previous.dtype) if rules.end_concept is not None else None
    live = list(range(batch))  # the document of each row still in the batch
    reasons = [STOP_MAX_LENGTH] * batch
    produced_by: list[list[Tensor]] = [[] for _ in range(batch)]  # (D,) each, original space

    for step in range(max_steps):
        normalised = session.propose()  # (B', D)
        produced = scaler.denormalize(normalised)  # (B', D)
        going = []
        for row, reason in enumerate(_stop_reasons(produced, previous, end, rules)):
            if reason is None:
                going.append(row)
                produced_by[live[row]].append(produced[row])
            else:
                reasons[live[row]] = reason
        if not going or step == max_steps - 1:
            break
        if len(going) < len(live):
            rows = torch.tensor(going, device=device)
            session.keep(rows)
            normalised, produced = normalised[rows], produced[rows]
            live = [live[row] for row in going]
        previous = produced
        session.commit(normalised)

    empty = context.new_zeros(0, context.shape[-1])
    return [Continuation(torch.stack(concepts).cpu() if concepts else empty.cpu(), reasons[i])
            for i, concepts in enumerate(produced_by)]


def _stop_reasons(produced: Tensor, previous: Tensor, end: Tensor | None,
                  rules: StopRules) -> list[str | None]:
    """Per document: why its new concept ends the continuation, or None to go on."""
    reasons: list[str | None] = [None] * produced.shape[0]
    if rules.repetition_threshold is not None:
        repeated = F.cosine_similarity(produced, previous, dim=-1) > rules.repetition_threshold
        reasons = [STOP_REPETITION if r else None for r in repeated.tolist()]
    if end is not None:
        ended = F.cosine_similarity(produced, end[None], dim=-1) > rules.end_threshold
        reasons = [STOP_END if e else r for e, r in zip(ended.tolist(), reasons)]
    return reasons
