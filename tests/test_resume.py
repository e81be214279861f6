"""Resuming: the log equals an uninterrupted run's even when the checkpoint falls inside a log
window; a resume that would change the run is refused; ``resume=true`` with nothing to resume
says so; a resume value that is no checkpoint is refused at validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lcm.config import resolve_recipe
from lcm.errors import RecipeError, UserError
from lcm.registry import get_registry
from tests._train_fixtures import train_recipe, walk_documents, write_shards, write_yaml
from tests._run import interrupted_after, train_in_process
from tests._train_fixtures import log_rows

STEPS = 8


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("resume") / "shards", walk_documents(30))


def recipe_for(shards: Path, output: Path, **train: object) -> dict:
    return train_recipe(shards, output, **{"steps": STEPS, "log_every": 4, "checkpoint_every": 3,
                                           **train})


def test_a_resume_inside_a_log_window_logs_what_an_uninterrupted_run_logs(shards, tmp_path, monkeypatch):
    whole = train_in_process(recipe_for(shards, tmp_path / "whole"), tmp_path)
    with monkeypatch.context() as patch:
        interrupted_after(7, patch)  # last checkpoint at step 6, inside the window 5-8
        with pytest.raises(KeyboardInterrupt):
            train_in_process(recipe_for(shards, tmp_path / "cut"), tmp_path)
    resumed = train_in_process(recipe_for(shards, tmp_path / "cut", resume=True), tmp_path)
    expected, got = log_rows(tmp_path / "whole"), log_rows(tmp_path / "cut")
    assert [r["step"] for r in got] == [r["step"] for r in expected] == [4, 8]
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in expected], rtol=1e-6)
    assert resumed.last_loss == pytest.approx(whole.last_loss, rel=1e-6)


def test_a_resume_that_changes_the_run_is_refused(shards, tmp_path):
    train_in_process(recipe_for(shards, tmp_path / "model", lr=1e-3), tmp_path)
    changed = recipe_for(shards, tmp_path / "model", lr=2e-3, resume=True)
    changed["data"]["batch_size"] = 8
    with pytest.raises(UserError, match=r"resuming would change data.batch_size 4 -> 8, "
                                        r"train.lr 0.001 -> 0.002; set them back"):
        train_in_process(changed, tmp_path)
    longer = recipe_for(shards, tmp_path / "model", lr=1e-3, resume=True, steps=STEPS + 2)
    assert train_in_process(longer, tmp_path).steps == STEPS + 2  # more steps is a continuation


def test_resume_true_without_a_checkpoint_says_it_starts_afresh(shards, tmp_path, capsys):
    train_in_process(recipe_for(shards, tmp_path / "model", resume=True, steps=2), tmp_path)
    assert (f"train.resume: no checkpoint in {tmp_path / 'model-training' / 'checkpoints'}; "
            f"starting afresh") in capsys.readouterr().err


def test_a_resume_value_that_is_no_checkpoint_is_refused_at_validation(shards, tmp_path):
    recipe = write_yaml(tmp_path / "r.yaml", recipe_for(shards, tmp_path / "model", resume="maybe"))
    with pytest.raises(RecipeError, match="train.resume: 'maybe' is neither true/false nor an "
                                          "existing checkpoint folder"):
        resolve_recipe(recipe, (), get_registry())
