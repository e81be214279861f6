"""Resuming never unpickles freely: the trainer state is JSON and DeepSpeed's files load with
``weights_only=True``, so a crafted checkpoint is refused with one line and runs nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lcm.train.checkpointing import CHECKPOINTS, find_latest, state_file
from tests._train_fixtures import run_lcm, train_recipe, walk_documents, write_shards, write_yaml
from tests._run import train_in_process


class CreatesAFile:
    """Unpickling it opens (creates) a file: the proof that code ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("safety")
    shards = write_shards(directory / "shards", walk_documents(20))
    recipe = train_recipe(shards, directory / "model", steps=2, checkpoint_every=2)
    train_in_process(recipe, directory)
    return directory, write_yaml(directory / "resume.yaml", {**recipe, "train": {
        **recipe["train"], "steps": 4, "resume": True}})


def test_trainer_state_is_json(trained):
    directory, _ = trained
    checkpoint = find_latest(directory / "model-training" / CHECKPOINTS)
    state = json.loads(state_file(checkpoint, 0).read_text())
    assert state["step"] == 2 and set(state["rng"]) >= {"python", "numpy", "torch"}
    assert not list(checkpoint.glob("trainer_state*.pt"))


def test_a_deepspeed_file_that_would_run_code_is_refused(trained, tmp_path):
    directory, recipe = trained
    checkpoint = find_latest(directory / "model-training" / CHECKPOINTS)
    proof = tmp_path / "code-ran"
    weights = checkpoint / "mp_rank_00_model_states.pt"
    torch.save({"module": CreatesAFile(proof)}, weights)

    result = run_lcm(recipe)
    assert result.returncode == 2, result.stderr[-2000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error == (f"error: {weights}: refusing to load: it holds io.open, which is not a weight "
                     "and could run code when unpickled")
    assert not proof.exists()
