"""Never go on with NaN: non-finite vectors are refused where they are read or written, a
normaliser with non-finite or degenerate fields is refused, collapsed dimensions get a safe scale,
and training stops (exit 1, no model) after consecutive non-finite losses."""
from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from lcm.data.normalizer import NORMALIZER_FILE, RobustScaler
from lcm.data.shards import Document, ShardWriter, shard_paths
from lcm.errors import DataIntegrityError, InputFileError, TrainingDivergedError
from lcm.interfaces import ConceptSpace
from tests._train_fixtures import SPACE, run_lcm, train_recipe, walk_documents, write_shards, write_yaml
from tests._run import train_in_process


def poison_first_vector(shards: Path, value: float) -> Path:
    """Rewrite the first shard with ``value`` in row 1 of its first document's vectors."""
    shard = shard_paths(shards)[0]
    with tarfile.open(shard) as source:
        members = [(m, source.extractfile(m).read()) for m in source.getmembers()]
    with tarfile.open(shard, "w") as target:
        poisoned = False
        for member, data in members:
            if member.name.endswith("vectors.npy") and not poisoned:
                vectors = np.load(io.BytesIO(data))
                vectors[1, 3] = value
                buffer = io.BytesIO()
                np.save(buffer, vectors)
                data, poisoned = buffer.getvalue(), True
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    return shard


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_vectors_in_a_shard_are_refused_naming_shard_document_and_row(tmp_path, value):
    documents = [d for d in walk_documents(6) if len(d.sentences) > 1]
    shards = write_shards(tmp_path / "shards", documents)
    shard = poison_first_vector(shards, value)
    recipe = write_yaml(tmp_path / "fit.yaml", {"task": "fit_normalizer", "shards": str(shards),
                                                 "output": str(tmp_path / "norm")})
    result = run_lcm(recipe)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"error: {shard}: document {documents[0].id} has 1 non-finite values (NaN/inf) in 1 "
        f"vector(s), first at row 1; refusing the shard set")
    assert not (tmp_path / "norm" / NORMALIZER_FILE).exists()


def test_an_encoder_giving_nan_or_fp16_overflow_is_refused_when_writing(tmp_path):
    writer = ShardWriter(tmp_path / "shards", SPACE, "toy")
    vectors = np.zeros((2, SPACE.dim), np.float32)
    vectors[0, 0] = 1e6  # beyond fp16: would be stored as inf
    with pytest.raises(DataIntegrityError, match="document d: the encoder gave 1 non-finite"):
        writer.write(Document("d", ["a", "b"], vectors))


@pytest.mark.parametrize("field, value, problem", [
    ("scale", float("nan"), "scale holds 1 NaN/inf value"),
    ("center", float("inf"), "center holds 1 NaN/inf value"),
    ("scale", 0.0, "1 dimension(s) have a scale of zero or less"),
])
def test_a_normaliser_with_nonfinite_or_degenerate_fields_is_refused(tmp_path, field, value, problem):
    RobustScaler.fit(np.random.default_rng(0).normal(size=(50, 4)), ConceptSpace("s", 4)).save(tmp_path)
    path = tmp_path / NORMALIZER_FILE
    data = json.loads(path.read_text())
    data[field][2] = value
    path.write_text(json.dumps(data))
    with pytest.raises(InputFileError, match=re.escape(f"unusable normalizer: {problem}")):
        RobustScaler.load(tmp_path)


def test_collapsed_dimensions_of_a_sparse_encoder_get_a_safe_scale(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 64))
    sparse = rng.random((2000, 57)) > 0.02  # 57 dimensions almost always zero
    vectors[:, 7:][sparse] = 0.0
    vectors[:3, 7] = 5.0  # a rare large value that a 1e-6 scale would blow up to 5e6
    scaler = RobustScaler.fit(vectors, ConceptSpace("sparse", 64))
    assert scaler.fallback_dims == 57
    normalized = scaler.normalize(vectors.astype(np.float32))
    assert np.abs(normalized).max() < 100
    assert RobustScaler.load(scaler.save(tmp_path)).fallback_dims == 57


def test_training_stops_after_consecutive_nonfinite_losses_without_exporting(tmp_path):
    shards = write_shards(tmp_path / "shards", walk_documents(20))
    recipe = train_recipe(shards, tmp_path / "model", steps=20, lr=1e30, warmup_steps=0,
                          grad_clip=0, max_nonfinite_steps=2)
    with pytest.raises(TrainingDivergedError, match=r"loss was NaN or inf for 2 consecutive steps"):
        train_in_process(recipe, tmp_path)
    assert not (tmp_path / "model" / "model.safetensors").exists()
