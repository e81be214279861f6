"""Run a resolved recipe in this process the way ``lcm run`` does: outputs claimed, the task
given a run context with the registry it was resolved against."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm import cli
from lcm.config import resolve_recipe
from lcm.interfaces import RunContext
from lcm.registry import get_registry
from lcm.train.loop import TrainingLoop
from lcm.ui import Terminal
from tests._train_fixtures import restored_process_state, write_yaml


def run_context(registry: Any = None) -> RunContext:
    return RunContext(registry or get_registry(), Terminal())


def run_resolved(resolved: Any, registry: Any = None) -> Any:
    return cli.run_resolved(resolved, registry or get_registry(), Terminal())


def train_in_process(recipe: dict, directory: Path):
    """Resolve and run a recipe as ``lcm run`` does, in this process (DeepSpeed, gloo)."""
    resolved = resolve_recipe(write_yaml(directory / "recipe.yaml", recipe), (), get_registry())
    with restored_process_state():
        return run_resolved(resolved)


def interrupted_after(step: int, monkeypatch) -> None:
    """Make training stop (as a kill would) once ``step`` steps have been taken."""
    original = TrainingLoop.step

    def step_or_stop(self):
        if self.state.step == step:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(TrainingLoop, "step", step_or_stop)
