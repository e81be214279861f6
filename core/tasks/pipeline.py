"""The ``pipeline`` task: several recipes' steps run in order from one file.

``vars`` holds values the steps share through OmegaConf interpolation (``${vars.workdir}``).
Validation covers every step before the first one runs, and knows that a step may read what
an earlier step writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lcm.config import typed_config, validate_task_body
from lcm.interfaces import RunContext, Task
from lcm.outputs import run_task

if TYPE_CHECKING:
    from lcm.registry import Registry


@dataclass
class PipelineConfig:
    steps: list[Any] = field(default_factory=list)
    """Each step is a recipe body: ``task:`` and that task's fields (and ``overwrite``; one at
    the top of the pipeline applies to every step)."""
    vars: dict[str, Any] = field(default_factory=dict)
    """Values shared by the steps through interpolation; not used otherwise."""


class Pipeline(Task):
    name = "pipeline"
    description = "Run several task steps in order, validated together."
    Config = PipelineConfig

    @staticmethod
    def validate_extra(body: dict, registry: "Registry", result: Any, where: str) -> None:
        steps = body.get("steps") or []
        if not steps:
            result.problems.append(f"{where + '.' if where else ''}steps: a pipeline needs steps")
        for i, step in enumerate(steps):
            label = f"{where + '.' if where else ''}steps[{i}]"
            if not isinstance(step, dict):
                result.problems.append(f"{label}: expected a mapping with a 'task'")
                continue
            validate_task_body(step, label, result, registry)

    def run(self, recipe: PipelineConfig, context: RunContext) -> None:
        for i, step in enumerate(recipe.steps, 1):
            info = context.registry.get("task", str(step["task"]))
            context.console.rule(f"step {i}/{len(recipe.steps)}: {info.name}")
            config = typed_config(info.cls, step, context.registry)
            run_task(info.cls, config, context, bool(step.get("overwrite", False)))
