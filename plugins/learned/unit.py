"""Training a concept decoder: the ``train_decoder`` task's unit of lcm's training loop.

Resuming (``train.resume=true``) restores weights, optimizer, schedule, RNG and the batch
position, so a run continued across sessions (or moved to a GPU) equals an uninterrupted one.
The model folder is exported at every checkpoint, so a long background run always leaves a
usable decoder behind.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterator

import torch

from lcm.errors import UserError
from lcm.plugins.learned.casing import Truecaser
from lcm.plugins.learned.corpus import BatchPlan, SentenceBatch, SentencePairs
from lcm.plugins.learned.model import ConceptDecoderModel, load_model, read_record, save_model
from lcm.plugins.learned.options import TrainDecoderRecipe
from lcm.train import checkpointing
from lcm.train.checkpointing import TrainerState
from lcm.train.data import DataPosition
from lcm.train.distributed import DistributedContext
from lcm.train.loop import (LOGS, LoopResult, TrainingLoop, UnitLoss, seed_everything,
                            start_process)
from lcm.plugins.learned import curve
from lcm.plugins.learned.evaluation import score_pairs


class SentenceUnit:
    """What the units over (sentence, vector) pairs share: the plan's batches and position,
    the run options of the data, the held-out curve's pairs and the base encoder."""

    recipe: Any
    context: DistributedContext
    plan: BatchPlan
    seen_before = 0
    """Sentences seen by the model the run started from."""

    def batches(self, position: DataPosition) -> Iterator[Any]:
        self._position = position  # advanced in place by the plan
        return self.plan.stream(position)

    def position(self) -> DataPosition:
        return DataPosition(self._position.epoch, self._position.batches)

    def counters(self) -> dict[str, float]:
        return {}

    def data_run_options(self) -> dict[str, Any]:
        """The optimiser's and the data's values a resumed run must share."""
        recipe = self.recipe
        return {**checkpointing.run_options(recipe, {"train": checkpointing.RUN_OPTIONS["train"]}),
                "data.batch_size": recipe.data.batch_size,
                "data.noise_levels": list(recipe.data.noise_levels),
                "data.max_sentences": recipe.data.max_sentences, "autocast": recipe.autocast}

    def sentences_seen(self, step: int) -> int:
        """Sentences read by this run up to ``step`` and by the model it started from."""
        return step * self.recipe.train.grad_accum * self.recipe.data.batch_size \
            * self.context.world_size + self.seen_before

    def curve_pairs(self) -> SentencePairs | None:
        """Held-out pairs scored at every checkpoint, if asked (rank 0)."""
        evaluation = self.recipe.evaluation
        if not (self.context.is_main and evaluation.shards and evaluation.curve_sentences > 0):
            return None
        return SentencePairs.read(evaluation.shards, evaluation.curve_sentences)

    def evaluation_encoder(self) -> Any:
        """The base space's encoder for round-trip scores (rank 0, where the recipe names one)."""
        spec = self.recipe.evaluation.encoder
        return spec.create() if self.context.is_main and spec is not None else None


class DecoderUnit(SentenceUnit):
    """A decoder of a ``train_decoder`` recipe, its bucketed batches and its model folder."""

    title = "train_decoder"
    export_at_checkpoints = True

    def __init__(self, recipe: TrainDecoderRecipe, context: DistributedContext):
        self.recipe, self.context = recipe, context
        seed_everything(recipe.train.seed)
        self.pairs = SentencePairs.read(recipe.data.shards, recipe.data.max_sentences)
        self.module = ConceptDecoderModel.build(recipe.model, self.pairs.space)
        self.earlier = self._init_from(self.module) if recipe.init_from else {}
        self.seen_before = int(self.earlier.get("sentences_seen", 0))
        self.micro_batch_size = recipe.data.batch_size
        self.autocast = "bfloat16" if recipe.autocast == "bf16" else None
        tokenizer = self.module.tokenizer
        self.truecaser = Truecaser.fit(self.pairs.sentences)
        ids = tokenizer(self.pairs.sentences, truncation=True,
                        max_length=recipe.model.max_tokens + 2)["input_ids"]
        self.plan = BatchPlan(self.pairs, ids, recipe.data.batch_size, recipe.data.noise_levels,
                              recipe.train.seed, recipe.data.bucket_batches, context.rank,
                              context.world_size, tokenizer.pad_token_id)
        self._position = DataPosition()
        self.encoder = self.evaluation_encoder()
        self.held_out = self.curve_pairs()

    def describe(self) -> str:
        return (f"decoder: {sum(p.numel() for p in self.module.parameters()):,} weights from "
                f"{self.recipe.model.base!r}, {len(self.pairs.sentences):,} sentences of "
                f"{self.pairs.space}, {torch.get_num_threads()} torch thread(s) on "
                f"{self.context.device}")

    def _init_from(self, model: ConceptDecoderModel) -> dict[str, Any]:
        """Load ``init_from``'s weights into ``model``; that model's training record."""
        record = read_record(self.recipe.init_from)
        if record.arch != self.recipe.model or record.space != self.pairs.space:
            raise UserError(f"{self.recipe.init_from}: decoder of another architecture or space "
                            f"({record.space}) than this recipe's")
        earlier, _ = load_model(self.recipe.init_from)
        model.load_state_dict(earlier.state_dict())
        return record.training

    # ------------------------------------------------------------------ the loop's calls

    def forward(self, engine: Any, batch: SentenceBatch) -> UnitLoss:
        loss = engine(batch.vectors.to(engine.device), batch.input_ids.to(engine.device),
                      batch.attention_mask.to(engine.device))
        return UnitLoss(loss, len(batch.input_ids))

    def run_options(self) -> dict[str, Any]:
        """What a resumed run must share with the run it continues (``train.steps`` may grow)."""
        return {**self.data_run_options(), "model": asdict(self.recipe.model)}

    def at_checkpoint(self, module: torch.nn.Module, state: TrainerState) -> None:
        """Score the held-out curve sentences now (logs/heldout.csv, logs/quality.png)."""
        if self.held_out is None:
            return
        (row,) = score_pairs(module, self.truecaser, self.held_out, [0.0], self.encoder)
        curve.record(self.recipe.training_path() / LOGS,
                     {"step": state.step, "sentences_seen": self.sentences_seen(state.step), **row},
                     state.step)

    def export(self, weights: dict[str, torch.Tensor], state: TrainerState,
               result: LoopResult | None) -> None:
        """Write the model folder, with the training record of this run and the earlier ones."""
        earlier = self.earlier
        training = {"steps": state.step,
                    "sentences_seen": self.sentences_seen(state.step),
                    "train_seconds": round(state.elapsed_s + earlier.get("train_seconds", 0.0), 1),
                    "continued_from": {k: earlier[k] for k in ("steps", "sentences_seen",
                                                               "train_seconds", "device")
                                       if k in earlier} if earlier else None,
                    "device": self.context.device,
                    "ranks": self.context.world_size, "shards": self.recipe.data.shards,
                    "noise_levels": list(self.recipe.data.noise_levels),
                    "last_loss": state.history[-1]["loss"] if state.history else None,
                    "options": asdict(self.recipe.train)}
        save_model(self.module, self.recipe.output, self.truecaser, training,
                   self.recipe.train.export_dtype, weights)


def train_decoder(recipe: TrainDecoderRecipe) -> tuple[DecoderUnit, dict[str, Any]]:
    """Train (or continue) the decoder of ``recipe``; the unit and the run's figures."""
    context = start_process(recipe.distributed)
    unit = DecoderUnit(recipe, context)
    loop = TrainingLoop(unit, recipe.train, context, recipe.training_path())
    loop.say(unit.describe())
    result = loop.run()
    seen = unit.sentences_seen(result.steps)
    return unit, {"steps": result.steps, "sentences_seen": seen,
                  "sentences_this_session": seen - unit.sentences_seen(result.resumed_from),
                  "seconds": result.seconds, "first_loss": result.first_loss,
                  "last_loss": result.last_loss, "output": recipe.output}
