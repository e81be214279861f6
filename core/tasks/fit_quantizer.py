"""The ``fit_quantizer`` task: fit residual-quantisation codebooks (Quant-LCM) on the
normalised vectors of a shard set, and report how well 1..K codebooks reconstruct them.

The output directory is self-contained for the quantised heads: the codebooks
(``codebooks.safetensors``, ``quantizer.json``), the normaliser they live behind, the concept
space, and ``reconstruction.json`` (relative MSE per number of codebooks used).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from lcm.data.normalizer import RobustScaler
from lcm.data.shards import Manifest, iter_documents, load_vectors
from lcm.errors import ConceptSpaceMismatchError
from lcm.fields import path
from lcm.interfaces import RunContext, Task
from lcm.quantize.options import FitOptions
from lcm.quantize.rvq import chunked, error_table, fit_residual_quantizer, reconstruction_errors
from lcm.spaces import write_space

RECONSTRUCTION_FILE = "reconstruction.json"


@dataclass
class FitQuantizerConfig:
    shards: str = path(must_exist=True, space_source=True, help="shard directory (prepare's output)")
    output: str = path(output="dir", help="directory for the codebooks and their report")
    normalizer: Optional[str] = path(None, must_exist=True, space_source=True,
                                     help="normalizer.json or its directory; default: the shards'")
    quantizer: FitOptions = field(default_factory=FitOptions)
    """Number and size of the codebooks, k-means iterations, init, seed, device."""
    max_vectors: Optional[int] = 1_000_000
    """Fit on at most this many vectors, the first in shard order (the paper: 15M); null = all."""
    chunk_size: int = 16384
    """Vectors per chunk of the streamed k-means passes (bounds the working memory)."""
    in_memory: bool = True
    """Hold the vectors in RAM between passes; false re-reads the shards on every pass
    (for corpora larger than memory: the fit then needs only the [N, K] code cache)."""


class FitQuantizer(Task):
    name = "fit_quantizer"
    description = "Fit residual vector quantisation codebooks (Quant-LCM) on normalised concepts."
    Config = FitQuantizerConfig

    def run(self, recipe: FitQuantizerConfig, context: RunContext) -> Any:
        space = Manifest.read(recipe.shards).space
        scaler = RobustScaler.load(recipe.normalizer or recipe.shards)
        if scaler.space != space:
            raise ConceptSpaceMismatchError(f"the normaliser is of {scaler.space} but the shards "
                                            f"{recipe.shards} are of {space}")
        source = _vector_source(recipe, scaler)
        quantizer = fit_residual_quantizer(source, recipe.quantizer, space)
        quantizer.meta["normalizer"] = "normalizer.json"
        errors = reconstruction_errors(quantizer, source)

        output = Path(recipe.output)
        quantizer.save(output)
        scaler.save(output)
        write_space(output, space)
        vectors = quantizer.meta["fit"]["vectors"]
        report = {"vectors": vectors, "measured_on": "the fitting vectors",
                  "codebook_size": quantizer.codebook_size,
                  "codebooks_used": list(range(1, len(errors) + 1)), "relative_mse": errors}
        (output / RECONSTRUCTION_FILE).write_text(json.dumps(report, indent=2))

        terminal = context.console
        terminal.print("codebooks used  relative MSE")
        for used, error in error_table(errors):
            terminal.print(f"{used:>14}  {error:.4f}")
        terminal.print(f"(squared error / total variance; all rows in "
                       f"{output / RECONSTRUCTION_FILE})")
        terminal.outcome(f"fitted {quantizer.num_codebooks} codebooks x "
                         f"{quantizer.codebook_size} units on {vectors} normalised vectors of "
                         f"{space} to {output}",
                         {"task": "fit_quantizer", "output": str(output), **report})
        return quantizer


def _vector_source(recipe: FitQuantizerConfig, scaler: Any):
    """The normalised vectors as a re-iterable stream of torch chunks."""
    if recipe.in_memory:
        vectors = scaler.normalize(load_vectors(recipe.shards, recipe.max_vectors))
        return chunked(torch.from_numpy(vectors), recipe.chunk_size)

    def stream() -> Iterator[torch.Tensor]:
        pending, held, total = [], 0, 0
        limit = recipe.max_vectors
        for doc in iter_documents(recipe.shards):
            vectors = doc.vectors[: None if limit is None else limit - total]
            pending.append(scaler.normalize(vectors.astype("float32")))
            held += len(vectors)
            total += len(vectors)
            if held >= recipe.chunk_size:
                yield torch.from_numpy(np.concatenate(pending))
                pending, held = [], 0
            if limit is not None and total >= limit:
                break
        if held:
            yield torch.from_numpy(np.concatenate(pending))

    return stream

