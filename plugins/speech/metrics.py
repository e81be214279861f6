"""How close a transcript is to what was said."""
from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9']+")


def word_error_rate(hypothesis: str, reference: str) -> float:
    """Word-level edit distance (substitutions, insertions, deletions) over the reference's
    word count; case and punctuation are ignored."""
    hyp, ref = (_WORD.findall(s.lower()) for s in (hypothesis, reference))
    if not ref:
        return float(len(hyp) > 0)
    row = list(range(len(hyp) + 1))  # distances from the empty reference prefix
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1] / len(ref)
