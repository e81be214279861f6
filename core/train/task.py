"""The base of the tasks that train into a model folder (``train``, ``train_decoder``,
``train_space``): what they write and when a run continues an earlier one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm.interfaces import Task
from lcm.outputs import Output


class TrainingTask(Task):
    """A task that trains into a model folder and a training folder beside it (checkpoints,
    logs), and continues an earlier run in them when its ``train.resume`` says so. Its recipe
    has ``output``, ``training_path()`` and ``train.resume``."""

    @staticmethod
    def outputs(recipe: Any) -> list[Output]:
        """The model folder and the training folder (derived from it by default)."""
        return [Output(Path(recipe.output), True), Output(recipe.training_path(), True)]

    @staticmethod
    def continues(recipe: Any) -> bool:
        """A resumed run carries on the earlier run's checkpoints, logs and model."""
        return recipe.train.resumption().requested
