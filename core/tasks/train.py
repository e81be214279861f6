"""The ``train`` task: a concept model on shards, through DeepSpeed (see ``lcm.train``).

Validation also checks what the schema cannot, without importing torch: the
architecture and its overrides, and that the normaliser was fitted in the shards' concept space.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from lcm.components import resolve
from lcm.errors import UserError
from lcm.interfaces import RunContext
from lcm.model.config import get_arch, head_options
from lcm.train.inputs import check_inputs
from lcm.train.options import Resume, TrainRecipe
from lcm.train.task import TrainingTask

if TYPE_CHECKING:
    from lcm.registry import Registry


class Train(TrainingTask):
    name = "train"
    description = "Train a concept model on shards with DeepSpeed (ZeRO, bf16, resume)."
    Config = TrainRecipe

    @staticmethod
    def section_defaults(body: dict) -> dict[str, dict[str, Any]]:
        """The head options the architecture was published with (a Two-Tower's denoiser depth
        is part of its size); the recipe's own head options override them."""
        model, head = body.get("model"), body.get("head")
        if not isinstance(model, dict) or not isinstance(head, dict):
            return {}
        return {"head": head_options(str(model.get("arch", "toy")), str(head.get("name")))}

    @staticmethod
    def validate_extra(body: dict, registry: "Registry", result: Any, where: str) -> None:
        prefix = f"{where}." if where else ""
        resume = (body.get("train") or {}).get("resume", False)
        folder = Resume.parse(resume).folder if isinstance(resume, (bool, str)) else None
        if folder is not None and not result.will_exist(str(resume)):
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

    def run(self, recipe: TrainRecipe, context: RunContext) -> Any:
        from lcm.train.concept_unit import train  # torch and DeepSpeed: only when training

        return train(recipe)


def resolve_head(registry: "Registry", arch: str, head: Mapping[str, Any]) -> Any:
    """A ``head`` section as a train recipe spells it, resolved (a ComponentSpec) over the
    head options architecture ``arch`` was published with."""
    return resolve(registry, "head", {**head_options(arch, str(head["name"])), **head})
