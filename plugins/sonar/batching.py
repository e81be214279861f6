"""Length-sorted batching: similar lengths share a batch, so little compute goes to padding.

Batches are cut by a count limit and a token budget (batch rows × longest item); results are
put back in input order by the caller with ``restore_order``.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch


def length_sorted_batches(lengths: Sequence[int], max_items: int,
                          max_tokens: int | None = None) -> list[list[int]]:
    """Indices of the inputs grouped into batches, longest first.

    A batch holds at most ``max_items`` inputs and at most ``max_tokens`` padded tokens; an
    input longer than the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        fits_tokens = max_tokens is None or (len(current) + 1) * longest <= max_tokens
        if current and (len(current) >= max_items or not fits_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def restore_order(batches: list[list[int]], outputs: list[Any]) -> Any:
    """Concatenate per-batch output tensors and put the rows back in input order."""
    index = torch.tensor([i for batch in batches for i in batch])
    stacked = torch.cat(outputs)
    result = torch.empty_like(stacked)
    result[index] = stacked
    return result
