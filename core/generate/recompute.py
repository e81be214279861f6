"""Generation without the cross-concept KV cache: the reference a head's cache must match.

Inside ``recomputing(head)`` the head's ``append`` re-reads the whole context with ``start``
(the generation loop has already appended the new concept to ``state.context``), so every new
concept costs a pass over the full prefix. Tests compare its continuations with the cached
ones (any head, third-party ones included); the generation benchmark times both.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def recomputing(head: Any) -> Iterator[Any]:
    """Make ``head`` (a HeadModule) recompute its context for every generated concept."""

    def append(model: Any, state: Any, concepts: Any) -> None:
        head.start(model, state)

    head.append = append  # an instance attribute shadows the class's method
    try:
        yield head
    finally:
        del head.append
