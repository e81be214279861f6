"""Choose the support check's cosine threshold from data (lcm.pipeline.support).

On the aclsum VALIDATION pairs (never the test ones), each abstract sentence is scored by its
cosine to the nearest sentence of its own paper's source (a sentence the source supports) and to
the nearest sentence of another paper's source (one it does not). The threshold that separates
the two best (Youden's J: true-positive rate minus false-positive rate) is printed with both
rates; lcm.pipeline.support.DEFAULT_MIN_COSINE is that value.

    .venv/bin/python scripts/support_threshold.py
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch.nn.functional as F

from lcm.components import resolve
from lcm.data.document_input import DocumentInput
from lcm.registry import get_registry


def nearest_cosines(abstract, source) -> np.ndarray:
    return (F.normalize(abstract, dim=-1) @ F.normalize(source, dim=-1).T).max(dim=-1).values.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, default=Path("data/aclsum_validation.jsonl"))
    args = parser.parse_args()
    encoder = resolve(get_registry(), "encoder", {"name": "minilm"}).create()
    segment = DocumentInput().sentences
    rows = [json.loads(line) for line in args.pairs.read_text(encoding="utf-8").splitlines()]
    sources = [encoder.encode(segment(r["text"])).float() for r in rows]
    abstracts = [encoder.encode(segment(r["summary"])).float() for r in rows]
    own = np.concatenate([nearest_cosines(a, s) for a, s in zip(abstracts, sources)])
    other = np.concatenate([nearest_cosines(a, sources[(i + 1) % len(rows)])
                            for i, a in enumerate(abstracts)])
    thresholds = np.round(np.arange(0.30, 0.90, 0.01), 2)
    j = [(own >= t).mean() - (other >= t).mean() for t in thresholds]
    best = thresholds[int(np.argmax(j))]
    print(f"{len(own)} abstract sentences of {len(rows)} papers ({args.pairs})")
    print(f"cosine to the nearest sentence of the own paper: median {np.median(own):.3f}; "
          f"of another paper: median {np.median(other):.3f}")
    print(f"threshold {best:.2f}: {(own >= best).mean():.1%} of own-paper pairs pass, "
          f"{(other >= best).mean():.1%} of other-paper pairs (Youden's J {max(j):.3f})")


if __name__ == "__main__":
    main()
