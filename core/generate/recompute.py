"""Generation without caches: the reference a head's caches must match, and their baseline.

Inside ``recomputing(head)`` the head's ``append`` re-reads the whole context with ``start``
(the generation loop has already appended the new concept to ``state.context``), so every new
concept costs a pass over the full prefix. A diffusion head (``lcm.diffusion.head.DiffusionHead``)
also denoises with its ``uncached_denoiser``: every denoising pass recomputes the context and
runs guidance's two passes separately. Tests compare the continuations with the cached ones
(any head, third-party ones included); the generation benchmark times both.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def recomputing(head: Any) -> Iterator[Any]:
    """Make ``head`` (a HeadModule) recompute its context for every concept (and every
    denoising pass, for a diffusion head)."""

    def append(model: Any, state: Any, concepts: Any) -> None:
        head.start(model, state)

    overrides = {"append": append}
    if hasattr(head, "uncached_denoiser"):
        overrides["denoiser_for"] = head.uncached_denoiser
    for name, method in overrides.items():
        setattr(head, name, method)  # an instance attribute shadows the class's method
    try:
        yield head
    finally:
        for name in overrides:
            delattr(head, name)
