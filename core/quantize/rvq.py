"""Residual vector quantisation (RVQ) of concept vectors, the discretisation behind Quant-LCM.

Codebook k quantises what codebooks 0..k-1 left over, so a vector becomes K indices (coarse
to fine) and decoding sums one codeword per codebook. Each codebook is fitted by k-means
(Lloyd's algorithm) on the residuals of the previous levels.

Fitting streams: ``source()`` yields the vectors in chunks, afresh for every pass, so neither
the vectors nor their residuals are ever held at once. What is kept between passes is each
vector's codes of the finished levels ([N, K] int16 on the host), from which residuals are
recomputed by lookups instead of re-encoding. Per level: one pass to gather the init sample,
``iterations`` Lloyd passes, one pass to assign the final codes.

Cost at the paper's scale (K=64 codebooks of C=8192, D=1024, N=15M vectors, 10 iterations):
the codebooks are 2 GiB in fp32, the code cache 15M x 64 x 2 B = 1.9 GB, a distance block
256 MiB (2**26 entries); every pass does N*C*D*2 = 2.5e14 FLOP of distance matmuls, so
64 * 11 passes = 1.8e17 FLOP: about an hour at 50 TFLOP/s on one GPU, days on a CPU. The
k-means++ init costs C passes over the init sample per level (a few seconds on a GPU at
16 * C points; use ``init="random"`` on a CPU). Tests use a few codebooks of a few dozen units.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from lcm.errors import InputFileError, UserError
from lcm.interfaces import ConceptSpace
from lcm.fields import require_valid
from lcm.quantize.options import FitOptions
from lcm.ui import progress as progress_bar

CODEBOOKS_FILE = "codebooks.safetensors"
META_FILE = "quantizer.json"
_DISTANCE_BLOCK = 2 ** 26
"""Entries of one (rows x C) distance block: bounds memory whatever the chunk size."""

VectorSource = Callable[[], Iterable[torch.Tensor]]
"""Called once per pass; yields ``[n, D]`` chunks, the same vectors in the same order each time."""


@dataclass
class ResidualQuantizer:
    """K codebooks of C codewords each; encodes ``[N, D]`` vectors to ``[N, K]`` indices."""

    codebooks: torch.Tensor
    """(K, C, D) float32."""
    space: ConceptSpace | None = None
    """The concept space of the (normalised) vectors it was fitted on."""
    meta: dict[str, Any] = field(default_factory=dict)
    """How it was fitted (options, number of vectors, normaliser), saved beside the codebooks."""

    @property
    def num_codebooks(self) -> int:
        return self.codebooks.shape[0]

    @property
    def codebook_size(self) -> int:
        return self.codebooks.shape[1]

    @property
    def dim(self) -> int:
        return self.codebooks.shape[2]

    def encode(self, vectors: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """Greedy residual codes ``[N, levels]`` (long) of ``vectors`` ``[N, D]``."""
        residual = vectors.to(self.codebooks.device, torch.float32).clone()
        codes = []
        for codebook in self.codebooks[: levels or self.num_codebooks]:
            index = nearest(residual, codebook)
            residual -= codebook[index]
            codes.append(index)
        return torch.stack(codes, dim=1).to(vectors.device)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the chosen codewords; ``codes`` may hold only the first levels ``[N, k]``."""
        codes = codes.to(self.codebooks.device).long()
        out = torch.zeros(codes.shape[0], self.dim, device=self.codebooks.device)
        for level in range(codes.shape[1]):
            out += self.codebooks[level][codes[:, level]]
        return out

    def quantize(self, vectors: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """Snap ``vectors`` to their RVQ reconstruction (Quant-LCM-c's last step)."""
        return self.decode(self.encode(vectors, levels)).to(vectors.device, vectors.dtype)

    def to(self, device: torch.device | str) -> "ResidualQuantizer":
        return ResidualQuantizer(self.codebooks.to(device), self.space, self.meta)

    def save(self, directory: str | Path) -> Path:
        """Write ``codebooks.safetensors`` and ``quantizer.json`` into ``directory``."""
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"codebooks": self.codebooks.detach().cpu().contiguous()},
                  str(directory / CODEBOOKS_FILE))
        meta = {"num_codebooks": self.num_codebooks, "codebook_size": self.codebook_size,
                "dim": self.dim, "space": None if self.space is None else self.space.record(),
                **self.meta}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: torch.device | str = "cpu") -> "ResidualQuantizer":
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from lcm.model.weights import read_safetensors

        directory = Path(directory)
        for name in (CODEBOOKS_FILE, META_FILE):
            if not (directory / name).is_file():
                raise InputFileError(directory, f"not a quantizer directory (no {name}; run the "
                                                "fit_quantizer task)")
        tensors = read_safetensors(directory / CODEBOOKS_FILE, device)
        try:
            meta = json.loads((directory / META_FILE).read_text())
            codebooks = tensors["codebooks"]
        except (ValueError, KeyError) as exc:
            raise InputFileError(directory, f"malformed quantizer: {exc}") from None
        expected = (meta.get("num_codebooks"), meta.get("codebook_size"), meta.get("dim"))
        if tuple(codebooks.shape) != expected:
            raise InputFileError(directory, f"codebooks of shape {tuple(codebooks.shape)} but "
                                            f"{META_FILE} says {expected}")
        space = meta.pop("space", None)
        for key in ("num_codebooks", "codebook_size", "dim"):
            meta.pop(key)
        try:
            space = None if space is None else ConceptSpace.from_record(space)
        except (ValueError, TypeError) as exc:
            raise InputFileError(directory / META_FILE, f"malformed quantizer: {exc}") from None
        return cls(codebooks.float(), space, meta)


# --------------------------------------------------------------------------- k-means pieces

def nearest(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (squared Euclidean) of each point, in bounded blocks."""
    squared_norms = centroids.pow(2).sum(dim=1)  # (C,)
    rows = max(1, _DISTANCE_BLOCK // centroids.shape[0])
    out = torch.empty(points.shape[0], dtype=torch.long, device=points.device)
    for start in range(0, points.shape[0], rows):
        block = points[start:start + rows]
        # ||p - c||^2 = ||p||^2 - 2 p.c + ||c||^2; the first term does not change the argmin
        out[start:start + rows] = (squared_norms - 2 * (block @ centroids.T)).argmin(dim=1)
    return out


def kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k centroids chosen from ``points``, each with probability proportional to its squared
    distance to the nearest one chosen so far (Arthur & Vassilvitskii 2007)."""
    n = points.shape[0]
    squared_norms = points.pow(2).sum(dim=1)

    def distances_to(index: int) -> torch.Tensor:  # a matvec, no [n, D] temporary
        return (squared_norms - 2 * (points @ points[index]) + squared_norms[index]).clamp_min(0)

    chosen = [int(torch.randint(n, (1,), generator=generator))]
    closest = distances_to(chosen[0])
    for _ in range(k - 1):
        cumulative = closest.double().cumsum(0).cpu()
        if cumulative[-1] > 0:
            target = torch.rand(1, dtype=torch.float64, generator=generator) * cumulative[-1]
            index = min(int(torch.searchsorted(cumulative, target)), n - 1)
        else:  # fewer distinct points than k: any point will do, its cluster stays empty
            index = int(torch.randint(n, (1,), generator=generator))
        chosen.append(index)
        closest = torch.minimum(closest, distances_to(index))
    return points[chosen].clone()


def random_points(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k distinct rows of ``points`` (with repetition only when there are fewer than k)."""
    n = points.shape[0]
    index = torch.randperm(n, generator=generator)[:k] if n >= k else \
        torch.randint(n, (k,), generator=generator)
    return points[index.to(points.device)].clone()


# --------------------------------------------------------------------------- fitting

class _CodeCache:
    """Codes of the finished levels, per chunk, so residuals come from lookups."""

    def __init__(self, codebook_size: int):
        self.dtype = torch.int16 if codebook_size <= torch.iinfo(torch.int16).max else torch.int32
        self.chunks: list[torch.Tensor] = []

    def residuals(self, source: VectorSource, codebooks: list[torch.Tensor],
                  device: torch.device) -> Iterable[tuple[int, torch.Tensor]]:
        """(chunk number, residual of each vector after ``codebooks``) over one pass."""
        for number, chunk in enumerate(source()):
            residual = chunk.to(device, torch.float32)
            if codebooks:
                codes = self.chunks[number].to(device).long()
                if codes.shape[0] != residual.shape[0]:
                    raise UserError(f"the vector source changed between passes (chunk {number})")
                for level, codebook in enumerate(codebooks):
                    residual = residual - codebook[codes[:, level]]
            yield number, residual

    def append_level(self, number: int, codes: torch.Tensor) -> None:
        codes = codes.to("cpu", self.dtype).unsqueeze(1)
        if number == len(self.chunks):
            self.chunks.append(codes)
        else:
            self.chunks[number] = torch.cat([self.chunks[number], codes], dim=1)


def fit_residual_quantizer(source: VectorSource, options: FitOptions,
                           space: ConceptSpace | None = None,
                           progress: bool = True) -> ResidualQuantizer:
    """Fit ``options.num_codebooks`` codebooks level by level with streamed k-means."""
    require_valid(options, "quantizer")
    device = torch.device(options.device)
    generator = torch.Generator().manual_seed(options.seed)
    cache = _CodeCache(options.codebook_size)
    codebooks: list[torch.Tensor] = []
    passes = options.num_codebooks * (options.iterations + 2)
    bar = progress_bar("fit RVQ", passes, "passes", shown=progress)
    vectors = 0
    for level in range(options.num_codebooks):
        sample, vectors = _init_sample(cache.residuals(source, codebooks, device),
                                       options.init_sample or 16 * options.codebook_size)
        bar.update(1)
        pick = kmeans_plus_plus if options.init == "kmeans++" else random_points
        centroids = pick(sample, options.codebook_size, generator)
        for _ in range(options.iterations):
            centroids, error = _lloyd_pass(cache.residuals(source, codebooks, device), centroids,
                                           sample, generator)
            bar.set(level=level + 1, mse=error / max(vectors, 1))
            bar.update(1)
        for number, residual in cache.residuals(source, codebooks, device):
            cache.append_level(number, nearest(residual, centroids))
        bar.update(1)
        codebooks.append(centroids)
    bar.close()
    meta = {"fit": {"iterations": options.iterations, "init": options.init,
                    "seed": options.seed, "vectors": vectors}}
    return ResidualQuantizer(torch.stack(codebooks).cpu(), space, meta)


def _init_sample(residuals: Iterable[tuple[int, torch.Tensor]],
                 size: int) -> tuple[torch.Tensor, int]:
    """The first ``size`` residuals of the stream, and how many vectors the stream holds."""
    kept, total = [], 0
    for _, residual in residuals:
        if total < size:
            kept.append(residual[: size - total])
        total += residual.shape[0]
    if not total:
        raise UserError("the vectors to fit the quantizer on are empty")
    return torch.cat(kept), total


def _lloyd_pass(residuals: Iterable[tuple[int, torch.Tensor]], centroids: torch.Tensor,
                sample: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """One Lloyd iteration over the stream: assign, then move each centroid to its mean.

    Ending on the mean update keeps every level's error at or below the previous level's on
    the fitting data (a cluster's mean is never worse than the zero vector). A centroid left
    without points is re-seeded at a random sample residual.
    """
    sums = torch.zeros(centroids.shape, dtype=torch.float64, device=centroids.device)
    counts = torch.zeros(centroids.shape[0], dtype=torch.float64, device=centroids.device)
    error = 0.0
    for _, residual in residuals:
        index = nearest(residual, centroids)
        error += float((residual - centroids[index]).pow(2).sum())
        sums.index_add_(0, index, residual.double())
        counts.index_add_(0, index, torch.ones_like(index, dtype=torch.float64))
    updated = (sums / counts.clamp_min(1).unsqueeze(1)).float()
    empty = counts == 0
    if empty.any():
        updated[empty] = random_points(sample, int(empty.sum()), generator)
    return updated, error


def reconstruction_errors(quantizer: ResidualQuantizer, source: VectorSource) -> list[float]:
    """Relative MSE after 1..K codebooks: squared error over the data's total variance
    (1.0 = no better than predicting the mean vector)."""
    levels = quantizer.num_codebooks
    errors = torch.zeros(levels, dtype=torch.float64)
    total, sum_sq, count = None, 0.0, 0
    for chunk in source():
        x = chunk.to(quantizer.codebooks.device, torch.float32)
        residual = x.clone()
        for level, codebook in enumerate(quantizer.codebooks):
            residual -= codebook[nearest(residual, codebook)]
            errors[level] += float(residual.double().pow(2).sum())
        total = x.double().sum(0) if total is None else total + x.double().sum(0)
        sum_sq += float(x.double().pow(2).sum())
        count += x.shape[0]
    if not count:
        raise UserError("no vectors to measure the quantizer's error on")
    variance = sum_sq - float(total.pow(2).sum()) / count
    return (errors / max(variance, torch.finfo(torch.float64).tiny)).tolist()


def chunked(vectors: torch.Tensor, chunk_size: int) -> VectorSource:
    """A source streaming an in-memory ``[N, D]`` tensor in chunks (tests, small sets)."""
    return lambda: (vectors[i:i + chunk_size] for i in range(0, vectors.shape[0], chunk_size))


def error_table(errors: Sequence[float]) -> list[tuple[int, float]]:
    """(codebooks used, relative MSE) rows worth printing: all of them up to 16, else powers
    of two and the last."""
    count = len(errors)
    shown = range(1, count + 1) if count <= 16 else \
        sorted({2 ** i for i in range(count.bit_length()) if 2 ** i <= count} | {count})
    return [(k, errors[k - 1]) for k in shown]
