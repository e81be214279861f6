"""The decoder's sampling and greedy loop: every candidate of every concept in one batch.

transformers' ``generate`` expands the batch to ``concepts × candidates`` before it reads the
prefix, keeps finished rows computing until the longest one ends, and blocks repeated n-grams in
a Python loop over every row and position at every step. Here the prefix (the concept's slots
and [CLS]) is read once per concept and its key/value cache copied to that concept's
candidates, a candidate that writes [SEP] leaves the batch (its rows of the cache go too), and
the n-gram block is a tensor comparison. The arithmetic of a step is the one ``generate`` does
(the same logits processors: n-gram block, temperature, top-k 50, top-p), so greedy decoding
writes the very tokens ``generate`` writes; sampling draws from the same distribution through
its own seeded generator, so a decode is reproducible whatever else the process does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

TOP_K = 50
"""transformers' default ``top_k`` under sampling, which ``generate`` applied before top-p."""


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn; ``None`` (greedy) takes the most likely one."""

    top_p: float = 0.9
    temperature: float = 1.0
    seed: Optional[int] = None


def banned_by_ngrams(tokens: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, token) pairs that would repeat an n-gram of ``size`` already in the row's
    ``tokens`` (A, T): the token that followed each earlier occurrence of the last ``size-1``."""
    rows, length = tokens.shape
    if size < 1 or length < size:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty
    if size == 1:  # every token written so far
        return (torch.arange(rows).repeat_interleave(length), tokens.reshape(-1))
    heads = tokens.unfold(1, size - 1, 1)[:, :length - size + 1]  # (A, T-n+1, n-1)
    tail = tokens[:, length - size + 1:]  # (A, n-1): the n-gram being completed
    hits = (heads == tail[:, None, :]).all(-1)  # (A, T-n+1)
    row, start = hits.nonzero(as_tuple=True)
    return row, tokens[row, start + size - 1]


def next_scores(logits: torch.Tensor, tokens: torch.Tensor, no_repeat_ngram: int,
                sampling: Optional[Sampling]) -> torch.Tensor:
    """The step's scores (A, V) after the n-gram block and, when sampling, the warpers."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    scores = logits.float()
    row, token = banned_by_ngrams(tokens, no_repeat_ngram)
    scores[row, token] = -float("inf")
    if sampling is not None:
        for warp in (TemperatureLogitsWarper(sampling.temperature), TopKLogitsWarper(TOP_K),
                     TopPLogitsWarper(sampling.top_p)):
            scores = warp(tokens, scores)
    return scores


@torch.no_grad()
def write_sentences(lm: Any, prefix: torch.Tensor, copies: int, max_new_tokens: int,
                    end_id: int, no_repeat_ngram: int = 3,
                    sampling: Optional[Sampling] = None) -> list[list[int]]:
    """Token ids (the end token left out) of ``copies`` sentences per row of ``prefix``
    (B, S, H input embeddings), row by row: candidates of row 0 first."""
    out = lm(inputs_embeds=prefix, use_cache=True)
    cache = out.past_key_values
    cache.batch_repeat_interleave(copies)  # each concept's prefix, read once, for its candidates
    logits = out.logits[:, -1].repeat_interleave(copies, 0)  # (A, V)
    total = prefix.shape[0] * copies
    active = torch.arange(total)  # the output each batch row writes
    tokens = torch.empty(total, 0, dtype=torch.long, device=prefix.device)
    written: list[list[int]] = [[] for _ in range(total)]
    generator = None
    if sampling is not None and sampling.seed is not None:
        generator = torch.Generator(device=prefix.device).manual_seed(sampling.seed)
    for step in range(max_new_tokens):
        scores = next_scores(logits, tokens, no_repeat_ngram, sampling)
        if sampling is None:
            chosen = scores.argmax(-1)
        else:
            chosen = torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(1)
        tokens = torch.cat([tokens, chosen[:, None]], 1)
        ended = chosen == end_id
        if step == max_new_tokens - 1:
            ended[:] = True
        for row in ended.nonzero().flatten().tolist():
            written[int(active[row])] = [t for t in tokens[row].tolist() if t != end_id]
        if bool(ended.all()):
            break
        if bool(ended.any()):  # finished candidates leave the batch, and their cache with them
            keep = (~ended).nonzero().flatten()
            active, tokens, chosen = active[keep], tokens[keep], chosen[keep]
            cache.batch_select_indices(keep)
        logits = lm(input_ids=chosen[:, None], past_key_values=cache, use_cache=True).logits[:, -1]
    return written
