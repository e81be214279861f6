"""The ``train_decoder`` task: learn to write the sentence of a concept, for any encoder's space.

It reads the (sentence, vector) pairs that ``prepare`` already stored, so nothing is re-encoded,
and writes a model folder that the ``learned`` decoder loads by path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lcm.interfaces import RunContext, Task
from lcm.outputs import Output
from lcm.plugins.learned.options import TrainDecoderRecipe


class TrainDecoder(Task):
    name = "train_decoder"
    description = "Train a text decoder (concept -> sentence) on prepared shards, noise-robust."
    Config = TrainDecoderRecipe

    @staticmethod
    def outputs(recipe: TrainDecoderRecipe) -> list[Output]:
        """The model folder and the training folder (derived from it by default)."""
        return [Output(Path(recipe.output), True), Output(recipe.training_path(), True)]

    @staticmethod
    def continues(recipe: TrainDecoderRecipe) -> bool:
        """A resumed run carries on the earlier run's checkpoints, logs and model."""
        return recipe.train.resume not in (False, "", "false", "False")

    def run(self, recipe: TrainDecoderRecipe, context: RunContext) -> Any:
        from lcm.plugins.learned.evaluation import report_lines, score_decoder
        from lcm.plugins.learned.trainer import DecoderTrainer

        trainer = DecoderTrainer(recipe)
        summary = trainer.run()
        if not trainer.context.is_main:
            return summary
        print(f"trained the decoder to step {summary['steps']} ({summary['sentences_seen']:,} "
              f"sentences seen in all, {summary['sentences_this_session']:,} in "
              f"{summary['seconds']:.0f} s now); loss {summary['last_loss']:.3f}; "
              f"model -> {recipe.output}", flush=True)
        if recipe.evaluation.shards:
            scores = score_decoder(recipe.output, recipe.evaluation.shards,
                                   recipe.evaluation.sentences, recipe.evaluation.noise_levels,
                                   trainer.encoder)
            summary["evaluation"] = scores
            for line in report_lines(scores):
                print(line, flush=True)
        return summary
