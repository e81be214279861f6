"""The decoder's sampling and greedy loop: every candidate of every concept in one batch.

transformers' ``generate`` expands the batch to ``concepts × candidates`` before it reads the
prefix, keeps finished rows computing until the longest one ends, and blocks repeated n-grams in
a Python loop over every row and position at every step. Here the prefix (the concept's slots
and [CLS]) is read once per concept and its key/value cache copied to that concept's
candidates, a candidate that writes [SEP] leaves the batch (its rows of the cache go too), and
the n-gram block is a tensor comparison and the nucleus is found among the top 50 tokens rather
than by sorting the vocabulary. A step's arithmetic is the one ``generate`` does (n-gram block,
then temperature, top-k 50, top-p), so greedy decoding writes the very tokens ``generate``
writes and sampling draws from the same distribution, through its own seeded generator: a
decode is reproducible whatever else the process draws.
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


def nucleus(scores: torch.Tensor, sampling: Sampling) -> tuple[torch.Tensor, torch.Tensor]:
    """The probabilities (A, K) and token ids (A, K) sampling draws from: what ``generate``'s
    temperature, top-k (50) and top-p warpers leave, computed on the top 50 alone instead of
    sorting the whole vocabulary (a token is kept while the mass ranked above it is < top_p)."""
    values, ids = (scores / sampling.temperature).topk(min(TOP_K, scores.shape[-1]), dim=-1)
    probs = values.softmax(-1)  # (A, K), best first
    above = probs.cumsum(-1) - probs
    probs = probs.masked_fill(above >= sampling.top_p, 0.0)
    return probs / probs.sum(-1, keepdim=True), ids


def next_tokens(logits: torch.Tensor, tokens: torch.Tensor, no_repeat_ngram: int,
                sampling: Optional[Sampling], generator: Optional[torch.Generator]) -> torch.Tensor:
    """The token each row writes next (A,): the n-gram block, then argmax or a draw."""
    scores = logits.float()
    row, token = banned_by_ngrams(tokens, no_repeat_ngram)
    scores[row, token] = -float("inf")
    if sampling is None:
        return scores.argmax(-1)
    probs, ids = nucleus(scores, sampling)
    return ids.gather(1, torch.multinomial(probs, 1, generator=generator)).squeeze(1)


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
    active = torch.arange(total, device=prefix.device)  # the output each batch row writes
    tokens = torch.empty(total, 0, dtype=torch.long, device=prefix.device)
    written: list[list[int]] = [[] for _ in range(total)]
    generator = None
    if sampling is not None and sampling.seed is not None:
        generator = torch.Generator(device=prefix.device).manual_seed(sampling.seed)
    for step in range(max_new_tokens):
        chosen = next_tokens(logits, tokens, no_repeat_ngram, sampling, generator)
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
