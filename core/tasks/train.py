"""The ``train`` task: a concept model on shards, through DeepSpeed (see ``lcm.train``).

Validation also checks what the schema cannot, without importing torch: value ranges, the
architecture and its overrides, and that the normaliser was fitted in the shards' concept space.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm.errors import UserError
from lcm.interfaces import Task
from lcm.outputs import Output
from lcm.train.options import TrainRecipe


class Train(Task):
    name = "train"
    description = "Train a concept model on shards with DeepSpeed (ZeRO, bf16, resume)."
    Config = TrainRecipe

    @staticmethod
    def validate_extra(body: dict, registry: Any, result: Any, where: str) -> None:
        from lcm.model.config import get_arch
        from lcm.train.inputs import check_inputs
        from lcm.train.options import range_problems

        prefix = f"{where}." if where else ""
        result.problems.extend(range_problems(body, prefix))
        resume = (body.get("train") or {}).get("resume", False)
        if isinstance(resume, str) and resume not in ("", "true", "True", "false", "False") \
                and not result.will_exist(resume):
            result.problems.append(f"{prefix}train.resume: {resume!r} is neither true/false nor "
                                   f"an existing checkpoint folder")
        model = body.get("model") or {}
        try:
            get_arch(str(model.get("arch", "toy")), model.get("overrides") or {})
        except UserError as exc:
            result.problems.append(f"{prefix}model: {exc}")
        data = body.get("data") or {}
        shards, normalizer = data.get("shards"), data.get("normalizer")
        if shards and normalizer and Path(str(shards)).exists() and Path(str(normalizer)).exists():
            try:
                check_inputs(shards, normalizer)
            except UserError as exc:
                result.problems.append(f"{prefix}data: {exc}")

    @staticmethod
    def outputs(recipe: TrainRecipe) -> list[Output]:
        """The model folder and the training folder (derived from it by default)."""
        return [Output(Path(recipe.output), True), Output(recipe.training_path(), True)]

    @staticmethod
    def continues(recipe: TrainRecipe) -> bool:
        """A resumed run carries on the earlier run's checkpoints, logs and model."""
        return recipe.train.resume not in (False, "", "false", "False")

    def run(self, recipe: TrainRecipe) -> Any:
        from lcm.train.trainer import train

        return train(recipe)
