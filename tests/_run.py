"""Run a resolved recipe in this process the way ``lcm run`` does: outputs claimed, the task
given a run context with the registry it was resolved against."""
from __future__ import annotations

from typing import Any

from rich.console import Console

from lcm.interfaces import RunContext
from lcm.outputs import run_task
from lcm.registry import get_registry


def run_context(registry: Any = None) -> RunContext:
    return RunContext(registry or get_registry(), Console(stderr=True))


def run_resolved(resolved: Any, registry: Any = None) -> Any:
    return run_task(resolved.task_cls, resolved.config, run_context(registry), resolved.overwrite)
