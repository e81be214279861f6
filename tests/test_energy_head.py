"""The energy head beyond the head contract: its score, its spread, its sampling options."""
from __future__ import annotations

import pytest
import torch

from lcm.errors import UserError
from lcm.generate.loop import StopRules, generate
from lcm.model.checkpoint import load_checkpoint, save_checkpoint
from lcm.plugins.heads.energy import energy_score
from lcm.registry import get_registry
from tests._head_fixtures import SPACE, fit, rotation_task, toy_head_model
from tests._model_fixtures import model_of, toy_normalizer

pytestmark = pytest.mark.usefixtures("single_thread")
RULES = StopRules(max_new_concepts=1, repetition_threshold=None)


def test_energy_score_on_hand_computed_draws():
    drawn = torch.tensor([[[3.0, 4.0], [-3.0, -4.0]], [[0.0, 1.0], [0.0, -1.0]]])  # (N=2, S=2, D=2)
    target = torch.zeros(2, 2)
    for beta in (1.0, 0.5, 1.5):
        fidelity, diversity = energy_score(drawn, target, beta)
        # row 0: both draws 5 from the target, 10 apart; row 1: both 1 away, 2 apart
        assert fidelity.tolist() == pytest.approx([5 ** beta, 1.0], rel=1e-6)
        assert diversity.tolist() == pytest.approx([10 ** beta, 2 ** beta], rel=1e-6)


def draws(model, prompt: torch.Tensor, seeds: range) -> torch.Tensor:
    """(len(seeds), D) the first generated concept after ``prompt``, one draw per seed."""
    return torch.stack([generate(model, [prompt], RULES, seed=s)[0].concepts[0] for s in seeds])


def test_trained_draws_spread_like_the_unpredictable_part_of_the_next_concept():
    """The rotation task's next concept is the rotated one plus noise of std 0.3/sqrt(1.09)
    (~0.29) per dimension: the trained head's draws spread about that much around one context
    (a regression head's would not spread at all), and temperature 0 removes the spread."""
    task = rotation_task(96, 8)
    model = toy_head_model("energy", None)
    fit(model, task, steps=150)
    spread = draws(model, task.concepts[0, :4], range(64)).std(dim=0).mean().item()
    assert 0.12 < spread < 0.6, spread
    model.head.config.temperature = 0.0
    assert draws(model, task.concepts[0, :4], range(4)).std(dim=0).max().item() < 1e-6


def test_temperature_changes_at_generation_and_the_trained_options_do_not(tmp_path):
    model = toy_head_model("energy", tmp_path)
    save_checkpoint(tmp_path / "model", model, toy_normalizer(SPACE))
    cold = load_checkpoint(tmp_path / "model", get_registry(), sampling={"temperature": 0.0}).model
    assert cold.head.config.temperature == 0.0
    with pytest.raises(UserError, match="beta cannot change at generation"):
        load_checkpoint(tmp_path / "model", get_registry(), sampling={"beta": 1.5})


@pytest.mark.parametrize("options, message", [
    ({"beta": 2.0}, "beta: must be less than 2, got 2.0"),
    ({"beta": 0.0}, "beta: must be greater than 0, got 0.0"),
    ({"samples": 1}, "samples: must be at least 2, got 1"),
])
def test_impossible_energy_options_are_refused_with_a_user_error(options, message):
    with pytest.raises(UserError, match=message):
        model_of("toy", {}, {"name": "energy", **options}, SPACE)
