"""Inputs the bad-input matrix modules share: a small shard set, a fit_normalizer recipe over
it, and keys whose interpolations grow tenfold per level."""
from __future__ import annotations

from pathlib import Path

from tests._train_fixtures import walk_documents, write_shards


def shards(d: Path, documents: int = 6) -> Path:
    return write_shards(d / "shards", [doc for doc in walk_documents(documents) if len(doc.sentences) > 1])


def fit(d: Path, output: str = "norm") -> dict:
    return {"task": "fit_normalizer", "shards": str(shards(d)), "output": str(d / output)}


def doubling(levels: int) -> dict:
    """Keys whose interpolations multiply by ten per level: ``72 * 10**levels`` characters."""
    keys = {"l0": "x" * 72}
    for level in range(1, levels + 1):
        keys[f"l{level}"] = "${l%d}" % (level - 1) * 10
    return keys
