"""Training a concept space: the ``train_space`` task's unit of lcm's training loop.

The data are a base encoder's prepared shards: each sentence is re-encoded by the encoder being
trained, and its stored vector is the anchor. A batch (its masked encoder input and its noise
too) is a pure function of its position, so a resumed run equals an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from lcm.errors import UserError
from lcm.interfaces import ConceptSpace
from lcm.plugins.learned.casing import Truecaser
from lcm.plugins.learned.corpus import BatchPlan, SentencePairs, pad
from lcm.plugins.learned.model import ConceptDecoderModel, load_model, read_record, save_model
from lcm.plugins.learned.space.model import ConceptSpaceModel, build_encoder, save_encoder
from lcm.plugins.learned.space.options import TrainSpaceRecipe
from lcm.plugins.learned.unit import SentenceUnit
from lcm.train.checkpointing import TrainerState
from lcm.train.data import DataPosition
from lcm.train.distributed import DistributedContext
from lcm.train.loop import (LOGS, LoopResult, TrainingLoop, UnitLoss, seed_everything,
                            start_process)
from lcm.plugins.learned import curve
from lcm.plugins.learned.space.evaluation import score_space


@dataclass
class SpaceBatch:
    encoder_ids: torch.Tensor  # (B, S) the encoder's input, some tokens masked
    encoder_mask: torch.Tensor
    input_ids: torch.Tensor  # (B, T) the decoder's targets
    attention_mask: torch.Tensor
    anchors: torch.Tensor  # (B, dim) the base encoder's vectors
    noise: torch.Tensor  # (B, dim) Gaussian noise of norm ~level, times |vector| in the model


class SpacePlan(BatchPlan):
    """The decoder's bucketed batch order, with each sentence's encoder input beside it."""

    def __init__(self, pairs: SentencePairs, decoder_ids: Sequence[Sequence[int]],
                 encoder_ids: Sequence[Sequence[int]], mask_id: int, mask_rate: float,
                 **options: Any):
        super().__init__(pairs, decoder_ids, **options)
        self.encoder_ids = list(encoder_ids)
        self.mask_id, self.mask_rate = mask_id, mask_rate

    def batch(self, indices: np.ndarray, epoch: int, number: int) -> SpaceBatch:
        generator = self.generator(epoch, number)
        input_ids, mask = pad([self.token_ids[i] for i in indices], self.pad_id)
        encoder_ids, encoder_mask = pad([self.encoder_ids[i] for i in indices], self.pad_id)
        inner = encoder_mask.bool()
        inner[:, 0] = False  # [CLS]
        inner[torch.arange(len(indices)), encoder_mask.sum(1) - 1] = False  # [SEP]
        masked = (torch.rand(encoder_ids.shape, generator=generator) < self.mask_rate) & inner
        levels = self.noise_levels(len(indices), generator)
        dim = self.pairs.vectors.shape[1]
        noise = torch.randn((len(indices), dim), generator=generator) * (levels / dim ** 0.5)[:, None]
        return SpaceBatch(encoder_ids.masked_fill(masked, self.mask_id), encoder_mask, input_ids,
                          mask, torch.from_numpy(self.pairs.vectors[indices]), noise)


class SpaceUnit(SentenceUnit):
    """The encoder and decoder of a ``train_space`` recipe, and the space's model folder."""

    title = "train_space"
    export_at_checkpoints = True

    def __init__(self, recipe: TrainSpaceRecipe, context: DistributedContext):
        self.recipe, self.context = recipe, context
        options = recipe.encoder
        seed_everything(recipe.train.seed)
        self.pairs = SentencePairs.read(recipe.data.shards, recipe.data.max_sentences)
        self.space = ConceptSpace(options.space_name, self.pairs.space.dim)
        if self.space.name == self.pairs.space.name:
            raise UserError(f"encoder.space_name: {options.space_name!r} is the base space's own "
                            f"name; a trained space needs a name of its own")
        self.sentence_encoder = build_encoder(options.base)
        decoder = self._decoder()
        self.module = ConceptSpaceModel(self.sentence_encoder, decoder, options.trainable_layers,
                                        options.latent_dropout, recipe.anchor_weight)
        self.micro_batch_size = recipe.data.batch_size
        self.autocast = "bfloat16" if recipe.autocast == "bf16" else None
        self.truecaser = Truecaser.fit(self.pairs.sentences)
        self.plan = self._plan(decoder)
        self._position = DataPosition()
        self.held_out = self.curve_pairs()
        self.base_encoder = self.evaluation_encoder()

    def _decoder(self) -> ConceptDecoderModel:
        """A decoder of the new space, from ``decoder_init``'s weights or the decoder base."""
        recipe = self.recipe
        decoder = ConceptDecoderModel.build(recipe.decoder, self.space)
        if recipe.decoder_init:
            record = read_record(recipe.decoder_init)
            if record.arch != recipe.decoder or record.space != self.pairs.space:
                raise UserError(f"decoder_init: {recipe.decoder_init} is a decoder of another "
                                f"architecture or space ({record.space}) than this recipe's "
                                f"decoder of {self.pairs.space}")
            earlier, _ = load_model(recipe.decoder_init)
            decoder.load_state_dict(earlier.state_dict())
        return decoder

    def _plan(self, decoder: ConceptDecoderModel) -> SpacePlan:
        recipe, tokenizer = self.recipe, decoder.tokenizer
        encoder_tokenizer = self.sentence_encoder.tokenizer
        if encoder_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise UserError(f"encoder.base {recipe.encoder.base!r} and decoder.base "
                            f"{recipe.decoder.base!r} have different vocabularies")
        decoder_ids = tokenizer(self.pairs.sentences, truncation=True,
                                max_length=recipe.decoder.max_tokens + 2)["input_ids"]
        encoder_ids = tokenizer(self.pairs.sentences, truncation=True,
                                max_length=recipe.encoder.max_tokens)["input_ids"]
        return SpacePlan(self.pairs, decoder_ids, encoder_ids, tokenizer.mask_token_id,
                         recipe.encoder.input_mask_rate, batch_size=recipe.data.batch_size,
                         noise_levels=recipe.data.noise_levels, seed=recipe.train.seed,
                         bucket_batches=recipe.data.bucket_batches, rank=self.context.rank,
                         world_size=self.context.world_size, pad_id=tokenizer.pad_token_id)

    def describe(self) -> str:
        trained = sum(p.numel() for p in self.module.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.module.parameters())
        return (f"space {self.space}: {trained:,} of {total:,} weights trained "
                f"({self.recipe.encoder.trainable_layers} encoder layer(s) and the decoder), "
                f"{len(self.pairs.sentences):,} sentences of {self.pairs.space}, "
                f"{torch.get_num_threads()} torch thread(s) on {self.context.device}")

    # ------------------------------------------------------------------ the loop's calls

    def forward(self, engine: Any, batch: SpaceBatch) -> UnitLoss:
        device = engine.device
        loss, parts = engine(batch.encoder_ids.to(device), batch.encoder_mask.to(device),
                             batch.input_ids.to(device), batch.attention_mask.to(device),
                             batch.anchors.to(device), batch.noise.to(device))
        return UnitLoss(loss, len(batch.input_ids), parts)

    def run_options(self) -> dict[str, Any]:
        recipe = self.recipe
        return {**self.data_run_options(), "encoder": asdict(recipe.encoder),
                "decoder": asdict(recipe.decoder), "anchor_weight": recipe.anchor_weight}

    def at_checkpoint(self, module: torch.nn.Module, state: TrainerState) -> None:
        """Score the held-out curve sentences (logs/heldout.csv, logs/quality.png)."""
        if self.held_out is None:
            return
        row = score_space(module, self.truecaser, self.held_out, [0.0], self.base_encoder)[0]
        curve.record(self.recipe.training_path() / LOGS,
                     {"step": state.step, "sentences_seen": self.sentences_seen(state.step), **row},
                     state.step)

    def export(self, weights: dict[str, torch.Tensor], state: TrainerState,
               result: LoopResult | None) -> None:
        """The decoder's folder with the encoder inside it (``encoder/``)."""
        recipe = self.recipe
        decoder_weights = _part(weights, "decoder.")
        training = {"steps": state.step, "sentences_seen": self.sentences_seen(state.step),
                    "train_seconds": round(state.elapsed_s, 1), "device": self.context.device,
                    "ranks": self.context.world_size, "shards": recipe.data.shards,
                    "base_space": self.pairs.space.record(), "encoder": asdict(recipe.encoder),
                    "anchor_weight": recipe.anchor_weight, "decoder_init": recipe.decoder_init,
                    "noise_levels": list(recipe.data.noise_levels),
                    "last_loss": state.history[-1]["loss"] if state.history else None,
                    "options": asdict(recipe.train)}
        save_model(self.module.decoder, recipe.output, self.truecaser, training,
                            recipe.train.export_dtype, decoder_weights,
                            extra=lambda folder: save_encoder(
                                self.sentence_encoder, _part(weights, "transformer."), folder,
                                recipe.encoder.max_tokens))


def _part(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {name[len(prefix):]: tensor for name, tensor in weights.items() if name.startswith(prefix)}


def train_space(recipe: TrainSpaceRecipe) -> tuple[SpaceUnit, dict[str, Any]]:
    """Train (or continue) the space of ``recipe``; the unit and the run's figures."""
    context = start_process(recipe.distributed)
    unit = SpaceUnit(recipe, context)
    loop = TrainingLoop(unit, recipe.train, context, recipe.training_path())
    loop.say(unit.describe())
    result = loop.run()
    return unit, {"steps": result.steps, "sentences_seen": unit.sentences_seen(result.steps),
                  "seconds": result.seconds, "first_loss": result.first_loss,
                  "last_loss": result.last_loss, "output": recipe.output}
