"""Registers the built-in tasks through the same hook a third-party plugin uses."""
from __future__ import annotations

from lcm.hookspecs import hookimpl
from lcm.tasks.evaluate import Evaluate
from lcm.tasks.pipeline import Pipeline


@hookimpl
def register_tasks(register) -> None:
    register(Pipeline)
    register(Evaluate)
