"""The training loop: DeepSpeed engine + batch stream + log + checkpoints + model export.

One optimizer step is ``grad_accum`` micro-batches on every rank. The same code runs alone on a
CPU (``lcm run``) and under the ``deepspeed`` launcher on GPUs and several nodes.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import torch

from lcm.train import checkpointing
from lcm.train.checkpointing import CHECKPOINTS, TrainerState
from lcm.train.data import Batch, BatchStream, DataPosition
from lcm.train.distributed import all_reduce_sum, barrier, init_distributed, set_cpu_threads
from lcm.train.engine import create_engine
from lcm.train.inputs import check_inputs
from lcm.train.log import PLOT_FILE, TrainingLog, plot_losses
from lcm.train.grad_norm import step_grad_norm, unsharded_grad_norm
from lcm.train.nonfinite import NonFiniteLosses, check_exportable
from lcm.train.options import TrainRecipe
from lcm.train.supervised import instruction_extra, load_initial_weights, training_framing
from lcm.torch_options import torch_dtype
from lcm.ui import current
from lcm.ui.bars import Bar

LOGS = "logs"
SUMMARY_FILE = "summary.json"


@dataclass
class StepResult:
    """Local (this rank's) figures of one optimizer step."""

    loss_sum: float  # summed over the step's micro-batches
    micro_batches: int
    concepts: int
    grad_norm: float
    lr: float  # the learning rate this step used
    metrics: dict[str, float] = field(default_factory=dict)
    """The head's own figures (``LossOutput.metrics``), averaged over the micro-batches."""


@dataclass
class TrainingSummary:
    steps: int
    first_loss: float
    last_loss: float
    concepts_per_s: float
    seconds: float
    documents_read: int
    windows_skipped: int
    output: str
    sources_cut: int = 0
    skipped_steps: int = 0
    """Optimizer steps DeepSpeed skipped (fp16 overflow)."""
    resumed_from: int = 0
    """The step this run resumed at (0: a fresh run); every other figure is this run's."""

    def line(self) -> str:
        """This run's figures alone (a resumed run says where it took over)."""
        run_steps = self.steps - self.resumed_from
        resumed = (f" (steps {self.resumed_from + 1}-{self.steps}, resumed at step "
                   f"{self.resumed_from})" if self.resumed_from else "")
        return (f"trained {run_steps} steps{resumed} in {self.seconds:.1f} s: loss "
                f"{self.first_loss:.4f} -> {self.last_loss:.4f}, {self.concepts_per_s:,.0f} "
                f"concepts/s; {self.documents_read} documents read, {self.windows_skipped} windows "
                f"skipped (too short to learn from)"
                + (f", {self.sources_cut} sources cut to fit" if self.sources_cut else "")
                + f"; model -> {self.output}")


class Trainer:
    """Builds the engine and the data stream of a recipe; ``run`` trains, ``steps`` times."""

    def __init__(self, recipe: TrainRecipe):
        self.recipe, self.options = recipe, recipe.train
        self.context = init_distributed(recipe.distributed.backend)
        if self.context.device == "cpu":
            set_cpu_threads(recipe.distributed.cpu_threads, recipe.data.num_workers)
        inputs = check_inputs(recipe.data.shards, recipe.data.normalizer)
        self.space, self.normalizer = inputs.space, inputs.normalizer
        self.framing = training_framing(self.options.style, recipe.data.shards)
        _seed_everything(self.options.seed)
        started = time.perf_counter()
        model = self._build_model()
        if recipe.model.init_from:
            load_initial_weights(model, recipe.model.init_from, self.normalizer)
        self.engine = create_engine(model, self.options, recipe.data.batch_size, self.context)
        self._say(f"DeepSpeed engine ready in {time.perf_counter() - started:.1f} s "
                  f"(ZeRO stage {self.options.zero_stage}, {self.options.precision}, "
                  f"{self.context.world_size} rank(s), {self.context.backend} on {self.context.device}, "
                  f"{torch.get_num_threads()} torch thread(s))")
        self.dtype = torch_dtype(self.options.precision)
        self.state = TrainerState(world_size=self.context.world_size,
                                  options=checkpointing.run_options(recipe))
        self.nonfinite = NonFiniteLosses(self.options.max_nonfinite_steps, self.context.device)
        self.stream = self._stream(DataPosition())
        self._batches: Iterator[Batch] = iter(self.stream)
        self._overflows = 0
        self.resumed_from = 0

    def _say(self, message: str) -> None:
        """A progress message on stderr (rank 0 only); stdout keeps the summary line."""
        if self.context.is_main:
            current().status(message)

    def _build_model(self):
        from lcm.model.lcm import build_model

        options = self.recipe.model
        model = build_model(options.arch, options.overrides, self.recipe.head, self.space)
        model.head.bind_normalizer(self.normalizer)
        return model

    def _stream(self, position: DataPosition) -> BatchStream:
        data = self.recipe.data
        return BatchStream(data.shards, self.normalizer, max_concepts=data.max_concepts,
                           batch_size=data.batch_size, shuffle_buffer=data.shuffle_buffer,
                           num_workers=data.num_workers, seed=self.options.seed,
                           rank=self.context.rank, world_size=self.context.world_size,
                           position=position, framing=self.framing,
                           with_text=self.recipe.head.cls.reads_sentences)

    # ----------------------------------------------------------------------- one step

    def step(self) -> StepResult:
        """One optimizer step: forward/backward over ``grad_accum`` micro-batches, then update."""
        engine = self.engine
        loss_sum, concepts, grad_norm, lr = 0.0, 0, None, float(engine.get_lr()[0])
        metrics: dict[str, float] = {}
        for _ in range(self.options.grad_accum):
            batch = next(self._batches)
            target_mask = None if batch.target_mask is None else batch.target_mask.to(engine.device)
            output = engine(batch.concepts.to(engine.device, self.dtype), batch.mask.to(engine.device),
                            target_mask, batch.sentences)
            engine.backward(output.loss)
            if engine.is_gradient_accumulation_boundary():
                grad_norm = unsharded_grad_norm(engine)
            engine.step()
            self._note_overflow()
            loss_sum += float(output.loss.detach())
            concepts += batch.num_concepts
            for name, value in output.metrics.items():
                metrics[name] = metrics.get(name, 0.0) + value / self.options.grad_accum
        self.state.step += 1
        self.nonfinite.check(loss_sum, self.state.step)
        return StepResult(loss_sum, self.options.grad_accum, concepts,
                          step_grad_norm(engine, grad_norm), lr, metrics)

    def _note_overflow(self) -> None:
        """Say (once, counted) that DeepSpeed skipped an optimizer step on fp16 overflow."""
        skipped = int(getattr(self.engine, "skipped_steps", 0) or 0)
        if skipped > self._overflows and self.context.is_main:
            current().note(f"fp16 overflow at step {self.state.step + 1}: the optimizer step was "
                           f"skipped and the loss scale lowered", key="overflow step skipped")
        self._overflows = skipped

    def steps(self, count: int) -> list[StepResult]:
        return [self.step() for _ in range(count)]

    # ----------------------------------------------------------------------- a whole run

    def run(self) -> TrainingSummary:
        """Train to ``train.steps`` (from a checkpoint if asked), log, checkpoint, export."""
        options, context = self.options, self.context
        work = self.recipe.training_path()
        self._start_or_resume(work)
        self._overflows = int(getattr(self.engine, "skipped_steps", 0) or 0)
        log = TrainingLog(work / LOGS, self.state.history, self.state.step) if context.is_main else None
        session_start, window, session = time.perf_counter(), _Window(self.state.window), _Window()
        self.resumed_from = self.state.step
        progress = current().progress("train", total=options.steps - self.state.step, unit="steps") \
            if context.is_main else Bar("train")
        try:
            while self.state.step < options.steps:
                result = self.step()
                window.add(result)
                session.add(result)
                progress.update(1)
                done = self.state.step == options.steps
                if self.state.step % options.log_every == 0 or done:
                    row = self._log_row(window, session_start)
                    progress.set(loss=round(row["loss"], 4),
                                 **({"step": self.state.step} if self.resumed_from else {}))
                    if log is not None:
                        log.write(row, result.metrics)
                    window = _Window()
                if self.state.step % options.checkpoint_every == 0 or done:
                    paused = time.perf_counter()
                    self._checkpoint(work, session_start, window)
                    for clock in (window, session):  # throughput counts training time only
                        clock.started += time.perf_counter() - paused
        finally:
            progress.close()
            if log is not None:
                log.close()
        summary = self._summary(session, session_start)
        self._export(summary, work)
        return summary

    def _start_or_resume(self, work: Path) -> None:
        target = checkpointing.resolve_resume(self.options.resume, work)
        if target is None:
            if self.options.resume not in (False, "", "false", "False"):
                self._say(f"train.resume: no checkpoint in {work / CHECKPOINTS}; starting afresh")
            stale = [p for p in (work / CHECKPOINTS, work / LOGS) if p.exists()]
            if stale:  # a fresh run: earlier checkpoints and logs would mix in
                self._say(f"starting afresh: removing {', '.join(map(str, stale))}")
            if self.context.is_main:
                for directory in stale:
                    shutil.rmtree(directory)
            barrier()
            return
        self.state = checkpointing.load(self.engine, target, self.context,
                                        checkpointing.run_options(self.recipe))
        checkpointing.restore_rng(self.state.rng)
        self.stream = self._stream(self.state.position)
        self._batches = iter(self.stream)
        self._say(f"resuming from {target} at step {self.state.step}")

    def _log_row(self, window: "_Window", session_start: float) -> dict[str, float]:
        loss_sum, micro, concepts = all_reduce_sum([window.loss_sum, window.micro_batches,
                                                    window.concepts], self.context.device)
        seconds = max(time.perf_counter() - window.started, 1e-9)
        row = {"step": self.state.step, "loss": loss_sum / micro,
               "lr": window.lr, "grad_norm": window.grad_norm,
               "concepts_per_s": concepts / seconds,
               "elapsed_s": self.state.elapsed_s + time.perf_counter() - session_start,
               "skipped_steps": self.engine.skipped_steps}
        self.state.history.append(row)
        return row

    def _checkpoint(self, work: Path, session_start: float, window: "_Window") -> None:
        saved = replace(self.state, position=replace(self.stream.position),
                        elapsed_s=self.state.elapsed_s + time.perf_counter() - session_start,
                        rng=checkpointing.capture_rng(), window=window.sums())
        checkpointing.save(self.engine, work / CHECKPOINTS, saved, self.context,
                           self.options.keep_checkpoints)
        if self.context.is_main and self.state.history:
            plot_losses(self.state.history, work / LOGS / PLOT_FILE)

    def _summary(self, session: "_Window", session_start: float) -> TrainingSummary:
        """This session's figures (all ranks): a resumed run's loss from where it took over."""
        training_seconds = max(time.perf_counter() - session.started, 1e-9)
        concepts, documents, skipped, cut = all_reduce_sum(
            [session.concepts, self.stream.documents_read, self.stream.windows_skipped,
             self.stream.sources_cut], self.context.device)
        history = [row for row in self.state.history if row["step"] > self.resumed_from]
        first, last = (history[0]["loss"], history[-1]["loss"]) if history else (math.nan, math.nan)
        return TrainingSummary(self.state.step, first, last, concepts / training_seconds,
                               time.perf_counter() - session_start, int(documents), int(skipped),
                               str(self.recipe.output), int(cut), int(self.engine.skipped_steps),
                               self.resumed_from)

    def _export(self, summary: TrainingSummary, work: Path) -> None:
        """Save the inference checkpoint (fp32 weights, normaliser) on rank 0."""
        from lcm.model.checkpoint import save_checkpoint

        state = self._full_state_dict()
        history = self.state.history
        check_exportable(state, history[-1]["loss"] if history else None, self.state.step)
        if self.context.is_main:
            model = self._build_model()
            model.load_state_dict(state)
            save_checkpoint(self.recipe.output, model, self.normalizer,
                            extra={"training": asdict(summary), "train": asdict(self.options),
                                   **instruction_extra(self.framing)},
                            dtype=self.options.export_dtype)
            (work / SUMMARY_FILE).write_text(json.dumps(asdict(summary), indent=2))
        barrier()

    def _full_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole model's weights in fp32 (ZeRO-3 gathers its partitions first)."""
        import deepspeed

        module = self.engine.module
        gathered = (deepspeed.zero.GatheredParameters(list(module.parameters()))
                    if self.engine.zero_optimization_stage() == 3 else contextlib.nullcontext())
        with gathered:
            return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()}


class _Window:
    """Sums over a span of steps (between two log rows, or a whole session); ``saved``: the
    sums a checkpoint kept of a window that a resumed run continues."""

    _SUMS = ("loss_sum", "micro_batches", "concepts", "grad_norm", "lr")

    def __init__(self, saved: dict[str, float] | None = None) -> None:
        self.started = time.perf_counter()
        self.loss_sum, self.micro_batches, self.concepts = 0.0, 0, 0
        self.grad_norm = self.lr = 0.0
        for name, value in (saved or {}).items():
            setattr(self, name, value)

    def sums(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self._SUMS}

    def add(self, result: StepResult) -> None:
        self.loss_sum += result.loss_sum
        self.micro_batches += result.micro_batches
        self.concepts += result.concepts
        self.grad_norm, self.lr = result.grad_norm, result.lr  # the latest step's


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(recipe: TrainRecipe) -> TrainingSummary:
    """Run a ``train`` recipe and print its summary line."""
    trainer = Trainer(recipe)
    summary = trainer.run()
    if trainer.context.is_main:
        current().summary(summary.line(), {"task": "train", **asdict(summary)})
    return summary


def measure_throughput(recipe: TrainRecipe, steps: int, warmup_steps: int = 1) -> float:
    """Concepts per second (all ranks) over ``steps`` optimizer steps after ``warmup_steps``.

    Writes nothing: no checkpoints, logs or model. For benchmarks.
    """
    trainer = Trainer(recipe)
    trainer.steps(warmup_steps)
    started = time.perf_counter()
    results = trainer.steps(steps)
    seconds = time.perf_counter() - started
    (concepts,) = all_reduce_sum([sum(r.concepts for r in results)], trainer.context.device)
    return concepts / seconds
