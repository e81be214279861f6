"""Residual vector quantisation: fitting, encoding, saving, and the fit_quantizer task."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lcm.cli import main
from lcm.data.normalizer import RobustScaler
from lcm.data.shards import Document, ShardWriter
from lcm.errors import InputFileError, UserError
from lcm.interfaces import ConceptSpace
from lcm.quantize.options import FitOptions
from lcm.quantize.rvq import (ResidualQuantizer, chunked, fit_residual_quantizer,
                              reconstruction_errors)

REPO = Path(__file__).resolve().parents[1]
SPACE = ConceptSpace("rvq_test", 12)


def clustered(n: int = 1500, dim: int = 12, seed: int = 0) -> torch.Tensor:
    """Vectors with structure at several scales, like residual levels see it."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(8, dim, generator=gen) * 4
    fine = torch.randn(n, dim, generator=gen)
    return coarse[torch.randint(8, (n,), generator=gen)] + fine


def fit(vectors: torch.Tensor, **options) -> ResidualQuantizer:
    base = dict(num_codebooks=4, codebook_size=16, iterations=5)
    return fit_residual_quantizer(chunked(vectors, 400), FitOptions(**{**base, **options}), SPACE,
                                  progress=False)


def test_error_falls_with_every_codebook_used():
    x = clustered()
    quantizer = fit(x, num_codebooks=6)
    errors = reconstruction_errors(quantizer, chunked(x, 500))
    assert len(errors) == 6 and errors[0] < 0.5  # the first level finds the 8 clusters
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    decoded = quantizer.decode(quantizer.encode(x))
    relative = (x - decoded).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert relative.item() == pytest.approx(errors[-1], rel=1e-4)
    prefix = quantizer.decode(quantizer.encode(x, levels=2))  # the first levels alone
    assert ((x - prefix).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item() == \
        pytest.approx(errors[1], rel=1e-4)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_enough_units_for_every_distinct_point_reconstruct_exactly(init):
    distinct = torch.randn(20, 12, generator=torch.Generator().manual_seed(1))
    x = distinct.repeat(30, 1)[torch.randperm(600, generator=torch.Generator().manual_seed(2))]
    quantizer = fit(x, num_codebooks=1, codebook_size=20 if init == "kmeans++" else 32,
                    init=init, iterations=10)
    assert reconstruction_errors(quantizer, chunked(x, 128))[0] < 1e-10
    torch.testing.assert_close(quantizer.quantize(x), x)


def test_save_load_round_trip_gives_identical_codes_and_vectors(tmp_path):
    x = clustered(seed=3)
    quantizer = fit(x)
    quantizer.save(tmp_path / "q")
    loaded = ResidualQuantizer.load(tmp_path / "q")
    assert loaded.space == SPACE and loaded.meta["fit"]["vectors"] == len(x)
    assert torch.equal(loaded.codebooks, quantizer.codebooks)
    codes = quantizer.encode(x)
    assert codes.shape == (len(x), 4) and torch.equal(loaded.encode(x), codes)
    assert torch.equal(loaded.decode(codes), quantizer.decode(codes))


def test_load_refuses_missing_and_inconsistent_files(tmp_path):
    with pytest.raises(InputFileError, match="not a quantizer directory"):
        ResidualQuantizer.load(tmp_path)
    fit(clustered(200), num_codebooks=2, iterations=1).save(tmp_path)
    meta = json.loads((tmp_path / "quantizer.json").read_text())
    (tmp_path / "quantizer.json").write_text(json.dumps({**meta, "codebook_size": 99}))
    with pytest.raises(InputFileError, match="codebooks of shape"):
        ResidualQuantizer.load(tmp_path)


def test_fitting_is_deterministic_for_a_seed():
    x = clustered(seed=4)
    assert torch.equal(fit(x, seed=7).codebooks, fit(x, seed=7).codebooks)
    assert not torch.equal(fit(x, seed=7).codebooks, fit(x, seed=8).codebooks)


def test_invalid_fit_options_are_user_errors():
    with pytest.raises(UserError, match="init: 'kmeans' is not one of kmeans\\+\\+, random"):
        fit(clustered(100), init="kmeans")
    with pytest.raises(UserError, match="codebook_size: must be at least 1, got 0"):
        fit(clustered(100), codebook_size=0)


# --------------------------------------------------------------------------- the task

def make_shards(directory: Path, space: ConceptSpace = SPACE, docs: int = 40) -> np.ndarray:
    """Tiny shards of clustered vectors plus the normaliser fitted on them."""
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(6, space.dim)) * 3
    all_vectors = []
    with ShardWriter(directory, space, "synthetic", docs_per_shard=15) as writer:
        for i in range(docs):
            n = int(rng.integers(3, 12))
            vectors = centers[rng.integers(6, size=n)] + rng.normal(size=(n, space.dim)) * 0.5
            writer.write(Document(f"doc{i}", [f"s{j}" for j in range(n)], vectors))
            all_vectors.append(vectors.astype(np.float16).astype(np.float32))
    vectors = np.concatenate(all_vectors)
    RobustScaler.fit(vectors, space).save(directory)
    return vectors


def lcm_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lcm.cli", "run", *args], capture_output=True,
                          text=True, cwd=REPO)


def test_fit_quantizer_end_to_end_through_lcm_run(tmp_path):
    vectors = make_shards(tmp_path / "shards")
    recipe = tmp_path / "fit.yaml"
    recipe.write_text(f"task: fit_quantizer\nshards: {tmp_path / 'shards'}\n"
                      f"output: {tmp_path / 'q'}\nchunk_size: 64\n"
                      "quantizer: {num_codebooks: 3, codebook_size: 8, iterations: 4}\n")
    out = lcm_run(str(recipe))
    assert out.returncode == 0, out.stderr
    assert "codebooks used  relative MSE" in out.stdout
    report = json.loads((tmp_path / "q" / "reconstruction.json").read_text())
    assert report["vectors"] == len(vectors) and report["codebooks_used"] == [1, 2, 3]
    errors = report["relative_mse"]
    assert errors[0] > errors[1] > errors[2] and errors[0] < 0.5
    for used, error in zip(report["codebooks_used"], errors):
        assert f"{used:>14}  {error:.4f}" in out.stdout

    # the output directory is self-contained: codebooks, normaliser, space
    quantizer = ResidualQuantizer.load(tmp_path / "q")
    scaler = RobustScaler.load(tmp_path / "q")
    assert quantizer.space == SPACE and scaler.space == SPACE
    assert json.loads((tmp_path / "q" / "concept_space.json").read_text())["dim"] == SPACE.dim
    normalised = torch.from_numpy(scaler.normalize(vectors))
    decoded = quantizer.quantize(normalised)
    relative = (normalised - decoded).pow(2).sum() / (normalised - normalised.mean(0)).pow(2).sum()
    assert relative.item() == pytest.approx(errors[-1], rel=1e-3)

    # streaming from the shards on every pass fits the same codebooks
    assert main(["run", str(recipe), "in_memory=false", f"output={tmp_path / 'q2'}"]) == 0
    again = json.loads((tmp_path / "q2" / "reconstruction.json").read_text())["relative_mse"]
    assert again == pytest.approx(errors, rel=1e-5)


def test_fit_quantizer_refuses_a_normaliser_of_another_space(tmp_path, capsys):
    make_shards(tmp_path / "shards")
    other = ConceptSpace("other", SPACE.dim)
    (tmp_path / "norm").mkdir()
    RobustScaler.fit(np.random.default_rng(0).normal(size=(50, SPACE.dim)), other).save(
        tmp_path / "norm")
    recipe = tmp_path / "fit.yaml"
    recipe.write_text(f"task: fit_quantizer\nshards: {tmp_path / 'shards'}\n"
                      f"normalizer: {tmp_path / 'norm'}\noutput: {tmp_path / 'q'}\n")
    assert main(["run", str(recipe)]) == 2
    assert "the normaliser is of other (12-d) but the shards" in capsys.readouterr().err
