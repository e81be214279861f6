"""A cosine as a reader can judge it: a small bar and a word, with a one-line legend.

The words are for MiniLM-size sentence spaces, where unrelated sentences land near 0.1 and
paraphrases above 0.8.
"""
from __future__ import annotations

CELLS = 8
WORDS = ((0.8, "near copy"), (0.6, "close"), (0.4, "related"), (float("-inf"), "loose"))
LEGEND = ("cosine to the nearest source segment (1 = same meaning): "
          + ", ".join(f"≥{floor:.1f} {word}" for floor, word in WORDS[:-1])
          + f", lower {WORDS[-1][1]}")


def word(cosine: float) -> str:
    return next(name for floor, name in WORDS if cosine >= floor)


def bar(cosine: float) -> str:
    filled = round(max(0.0, min(1.0, cosine)) * CELLS)
    return "█" * filled + "·" * (CELLS - filled)


def describe(cosine: float) -> str:
    """``██████·· 0.74 close``."""
    return f"{bar(cosine)} {cosine:.2f} {word(cosine)}"
