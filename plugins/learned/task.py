"""The ``train_decoder`` task: learn to write the sentence of a concept, for any encoder's space.

It reads the (sentence, vector) pairs that ``prepare`` already stored, so nothing is re-encoded,
and writes a model folder that the ``learned`` decoder loads by path.
"""
from __future__ import annotations

from typing import Any

from rich.markup import escape

from lcm.interfaces import RunContext
from lcm.plugins.learned.evaluation import report_lines, score_decoder
from lcm.plugins.learned.options import TrainDecoderRecipe
from lcm.train.task import TrainingTask


class TrainDecoder(TrainingTask):
    name = "train_decoder"
    description = "Train a text decoder (concept -> sentence) on prepared shards, noise-robust."
    Config = TrainDecoderRecipe

    def run(self, recipe: TrainDecoderRecipe, context: RunContext) -> Any:
        from lcm.plugins.learned.unit import train_decoder  # DeepSpeed: only when training

        unit, outcome = train_decoder(recipe)
        if not unit.context.is_main:
            return outcome
        terminal = context.console
        line = (f"trained the decoder to step {outcome['steps']} ({outcome['sentences_seen']:,} "
                f"sentences seen in all, {outcome['sentences_this_session']:,} in "
                f"{outcome['seconds']:.0f} s now); loss {outcome['last_loss']:.3f}; "
                f"model -> {recipe.output}")
        if recipe.evaluation.shards:
            scores = score_decoder(recipe.output, recipe.evaluation.shards,
                                   recipe.evaluation.sentences, recipe.evaluation.noise_levels,
                                   unit.encoder)
            outcome["evaluation"] = scores
            for report in report_lines(scores):
                terminal.print(escape(report))
        terminal.outcome(line, {"task": "train_decoder", **outcome})
        return outcome
