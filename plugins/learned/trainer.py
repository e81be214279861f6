"""Training a concept decoder: the same DeepSpeed engine, checkpoints and log as ``train``.

Resuming (``train.resume=true``) restores weights, optimizer, schedule, RNG and the batch
position, so a run continued across sessions (or moved to a GPU) equals an uninterrupted one.
The model folder is exported at every checkpoint, so a long background run always leaves a
usable decoder behind.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from lcm.errors import UserError
from lcm.plugins.learned.casing import Truecaser
from lcm.plugins.learned.corpus import BatchPlan, SentencePairs
from lcm.plugins.learned.model import ConceptDecoderModel, save_model
from lcm.plugins.learned.options import TrainDecoderRecipe
from lcm.train import checkpointing
from lcm.train.checkpointing import CHECKPOINTS, TrainerState
from lcm.train.data import DataPosition
from lcm.train.distributed import all_reduce_sum, barrier, init_distributed, set_cpu_threads
from lcm.train.engine import create_engine
from lcm.train.log import PLOT_FILE, TrainingLog, plot_losses
from lcm.train.grad_norm import step_grad_norm, unsharded_grad_norm
from lcm.train.nonfinite import NonFiniteLosses, check_exportable
from lcm.ui import current
from lcm.ui.bars import Bar

LOGS = "logs"


class DecoderTrainer:
    def __init__(self, recipe: TrainDecoderRecipe):
        self.recipe, self.options = recipe, recipe.train
        self.context = init_distributed(recipe.distributed.backend)
        if self.context.device == "cpu":
            set_cpu_threads(recipe.distributed.cpu_threads, 0)
        torch.manual_seed(self.options.seed)
        self.pairs = SentencePairs.read(recipe.data.shards, recipe.data.max_sentences)
        model = ConceptDecoderModel.build(recipe.model, self.pairs.space)
        self.earlier = self._init_from(model) if recipe.init_from else {}
        self.tokenizer = model.tokenizer
        self.truecaser = Truecaser.fit(self.pairs.sentences)
        ids = self.tokenizer(self.pairs.sentences, truncation=True,
                             max_length=recipe.model.max_tokens + 2)["input_ids"]
        self.plan = BatchPlan(self.pairs, ids, recipe.data.batch_size, recipe.data.noise_levels,
                              self.options.seed, recipe.data.bucket_batches, self.context.rank,
                              self.context.world_size, self.tokenizer.pad_token_id)
        self.engine = create_engine(model, self.options, recipe.data.batch_size, self.context,
                                    autocast="bfloat16" if recipe.autocast == "bf16" else None)
        self.state = TrainerState(world_size=self.context.world_size)
        self.nonfinite = NonFiniteLosses(self.options.max_nonfinite_steps, self.context.device)
        self.grad_norm = 0.0  # the latest step's, for the log
        self.encoder = self._evaluation_encoder()
        self.curve_pairs = self._curve_pairs()
        self._say(f"decoder: {sum(p.numel() for p in model.parameters()):,} weights from "
                  f"{recipe.model.base!r}, {len(self.pairs.sentences):,} sentences of "
                  f"{self.pairs.space}, {torch.get_num_threads()} torch thread(s) on "
                  f"{self.context.device}")

    def _init_from(self, model: ConceptDecoderModel) -> dict[str, Any]:
        """Load ``init_from``'s weights into ``model``; that model's training record."""
        from lcm.plugins.learned.model import load_model, read_record

        record = read_record(self.recipe.init_from)
        if record.arch != self.recipe.model or record.space != self.pairs.space:
            raise UserError(f"{self.recipe.init_from}: decoder of another architecture or space "
                            f"({record.space}) than this recipe's")
        earlier, _ = load_model(self.recipe.init_from)
        model.load_state_dict(earlier.state_dict())
        return record.training

    def _evaluation_encoder(self) -> Any:
        """The space's encoder for round-trip scores (rank 0, where the recipe names one)."""
        spec = self.recipe.evaluation.encoder
        return spec.create() if self.context.is_main and spec is not None else None

    def _curve_pairs(self) -> SentencePairs | None:
        """Held-out pairs scored at every checkpoint, if asked."""
        evaluation = self.recipe.evaluation
        if not (self.context.is_main and evaluation.shards and evaluation.curve_sentences > 0):
            return None
        return SentencePairs.read(evaluation.shards, evaluation.curve_sentences)

    def _say(self, message: str) -> None:
        if self.context.is_main:
            current().status(message)

    def step(self, batches) -> tuple[float, int]:
        """One optimizer step; its mean loss and the sentences it read (this rank)."""
        engine, loss_sum, sentences, unsharded = self.engine, 0.0, 0, None
        for _ in range(self.options.grad_accum):
            batch = next(batches)
            loss = engine(batch.vectors.to(engine.device), batch.input_ids.to(engine.device),
                          batch.attention_mask.to(engine.device))
            engine.backward(loss)
            if engine.is_gradient_accumulation_boundary():
                unsharded = unsharded_grad_norm(engine)
            engine.step()
            loss_sum += float(loss.detach())
            sentences += len(batch.input_ids)
        self.state.step += 1
        self.nonfinite.check(loss_sum, self.state.step)
        self.grad_norm = step_grad_norm(engine, unsharded)
        return loss_sum / self.options.grad_accum, sentences

    def run(self) -> dict[str, Any]:
        work = self.recipe.training_path()
        position = self._start_or_resume(work)
        batches = self.plan.stream(position)
        log = TrainingLog(work / LOGS, self.state.history, self.state.step) if self.context.is_main else None
        started = time.perf_counter()
        window = {"loss": 0.0, "steps": 0, "sentences": 0, "started": started}
        seen_before = self._sentences_seen()
        progress = current().progress("train_decoder", self.options.steps - self.state.step,
                                      "steps") if self.context.is_main else Bar("train_decoder")
        try:
            while self.state.step < self.options.steps:
                loss, sentences = self.step(batches)
                window["loss"] += loss
                window["steps"] += 1
                window["sentences"] += sentences
                progress.update(1)
                done = self.state.step == self.options.steps
                if self.state.step % self.options.log_every == 0 or done:
                    row = self._log_row(window, started)
                    progress.set(loss=round(row["loss"], 3))
                    if log is not None:
                        log.write(row)
                    window = {"loss": 0.0, "steps": 0, "sentences": 0,
                              "started": time.perf_counter()}
                if self.state.step % self.options.checkpoint_every == 0 or done:
                    self._checkpoint(work, position, started)
        finally:
            progress.close()
            if log is not None:
                log.close()
        seconds = time.perf_counter() - started
        history = self.state.history
        return {"steps": self.state.step, "sentences_seen": self._sentences_seen(),
                "sentences_this_session": self._sentences_seen() - seen_before,
                "seconds": seconds, "first_loss": history[0]["loss"] if history else None,
                "last_loss": history[-1]["loss"] if history else None,
                "output": self.recipe.output}

    def run_options(self) -> dict[str, Any]:
        """What a resumed run must share with the run it continues (``train.steps`` may grow)."""
        recipe = self.recipe
        return {**checkpointing.run_options(recipe, {"train": checkpointing.RUN_OPTIONS["train"]}),
                "data.batch_size": recipe.data.batch_size,
                "data.noise_levels": list(recipe.data.noise_levels),
                "data.max_sentences": recipe.data.max_sentences,
                "model": asdict(recipe.model), "autocast": recipe.autocast}

    def _sentences_seen(self) -> int:
        """Sentences read by this run and by the decoder it started from (``init_from``)."""
        return self.state.step * self.options.grad_accum * self.recipe.data.batch_size \
            * self.context.world_size + int(self.earlier.get("sentences_seen", 0))

    def _start_or_resume(self, work: Path) -> DataPosition:
        target = checkpointing.resolve_resume(self.options.resume, work)
        if target is None:
            return DataPosition()
        self.state = checkpointing.load(self.engine, target, self.context, self.run_options())
        checkpointing.restore_rng(self.state.rng)
        self._say(f"resuming from {target} at step {self.state.step}")
        return replace(self.state.position)

    def _log_row(self, window: dict[str, float], started: float) -> dict[str, float]:
        loss_sum, steps, sentences = all_reduce_sum(
            [window["loss"], window["steps"], window["sentences"]], self.context.device)
        seconds = max(time.perf_counter() - window["started"], 1e-9)
        row = {"step": self.state.step, "loss": loss_sum / steps,
               "lr": float(self.engine.get_lr()[0]), "grad_norm": self.grad_norm,
               "concepts_per_s": sentences / seconds,
               "elapsed_s": self.state.elapsed_s + time.perf_counter() - started,
               "skipped_steps": self.engine.skipped_steps}
        self.state.history.append(row)
        return row

    def _checkpoint(self, work: Path, position: DataPosition, started: float) -> None:
        saved = replace(self.state, position=replace(position),
                        elapsed_s=self.state.elapsed_s + time.perf_counter() - started,
                        rng=checkpointing.capture_rng(), options=self.run_options())
        checkpointing.save(self.engine, work / CHECKPOINTS, saved, self.context,
                           self.options.keep_checkpoints)
        history = self.state.history
        check_exportable(self.engine.module.state_dict(),
                         history[-1]["loss"] if history else None, self.state.step)
        if self.context.is_main:
            if self.state.history:
                plot_losses(self.state.history, work / LOGS / PLOT_FILE,
                            title="decoder training loss (token NLL)")
            self.export(saved.elapsed_s)
            self._record_quality(work / LOGS)
        barrier()

    def _record_quality(self, logs: Path) -> None:
        """Score the held-out curve sentences now; the RNG is left as training had it."""
        if self.curve_pairs is None:
            return
        from lcm.plugins.learned import curve
        from lcm.plugins.learned.evaluation import score_pairs

        rng = checkpointing.capture_rng()
        module = self.engine.module
        module.eval()
        try:
            (row,) = score_pairs(module, self.truecaser, self.curve_pairs, [0.0], self.encoder)
        finally:
            module.train()
            checkpointing.restore_rng(rng)
        curve.record(logs, {"step": self.state.step, "sentences_seen": self._sentences_seen(), **row},
                     self.state.step)

    def export(self, elapsed_s: float) -> Path:
        """Write the model folder from the engine's current weights (rank 0)."""
        model: ConceptDecoderModel = self.engine.module
        earlier = self.earlier
        training = {"steps": self.state.step,
                    "sentences_seen": self._sentences_seen(),
                    "train_seconds": round(elapsed_s + earlier.get("train_seconds", 0.0), 1),
                    "continued_from": {k: earlier[k] for k in ("steps", "sentences_seen",
                                                               "train_seconds", "device")
                                       if k in earlier} if earlier else None,
                    "device": self.context.device,
                    "ranks": self.context.world_size, "shards": self.recipe.data.shards,
                    "noise_levels": list(self.recipe.data.noise_levels),
                    "last_loss": self.state.history[-1]["loss"] if self.state.history else None,
                    "options": asdict(self.options)}
        return save_model(model, self.recipe.output, self.truecaser,
                          training, self.options.export_dtype)
