"""The ``train_space`` task: a sentence encoder and its decoder trained together into a new,
decodable concept space that stays near the base encoder's (the anchor term)."""
from __future__ import annotations

from typing import Any

from rich.markup import escape

from lcm.interfaces import RunContext
from lcm.plugins.learned.corpus import SentencePairs
from lcm.plugins.learned.space.options import TrainSpaceRecipe
from lcm.train.task import TrainingTask


class TrainSpace(TrainingTask):
    name = "train_space"
    description = ("Train an encoder and its decoder together into a decodable concept space "
                   "(anchored to the base encoder's), from prepared shards.")
    Config = TrainSpaceRecipe

    def run(self, recipe: TrainSpaceRecipe, context: RunContext) -> Any:
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from lcm.plugins.learned.space.unit import train_space

        unit, outcome = train_space(recipe)
        if not unit.context.is_main:
            return outcome
        line = (f"trained the space {unit.space} to step {outcome['steps']} "
                f"({outcome['sentences_seen']:,} sentences seen, {outcome['seconds']:.0f} s now); "
                f"loss {outcome['last_loss']:.3f}; model -> {recipe.output}")
        evaluation = recipe.evaluation
        if evaluation.shards:
            # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
            from lcm.plugins.learned.space.evaluation import report_lines, score_space
            from lcm.plugins.learned.space.model import load_space

            model, truecaser = load_space(recipe.output)
            scores = score_space(model, truecaser,
                                 SentencePairs.read(evaluation.shards, evaluation.sentences),
                                 evaluation.noise_levels, unit.base_encoder)
            outcome["evaluation"] = scores
            for report in report_lines(scores):
                context.console.print(escape(report))
        context.console.outcome(line, {"task": "train_space", **outcome})
        return outcome
