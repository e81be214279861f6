"""The one training loop: a DeepSpeed engine stepping a ``TrainUnit``, with log, checkpoints,
resume and export.

Every trainer of lcm (the concept model, the text decoder, a learned concept space) is a unit:
it builds its module and its batch stream, computes a micro-batch's loss and writes its model
folder. Everything a run shares lives here once: the optimizer step over ``grad_accum``
micro-batches, the non-finite guard, the CSV/TensorBoard log and loss plot, atomic checkpoints
with the data position and RNG (so a resumed run equals an uninterrupted one), and the refusal
to export weights that are not finite. The same code runs alone on a CPU and under the
``deepspeed`` launcher on many GPUs.
"""
from __future__ import annotations

import contextlib
import math
import random
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np
import torch

from lcm.train import checkpointing
from lcm.train.checkpointing import CHECKPOINTS, TrainerState
from lcm.train.data import DataPosition
from lcm.train.distributed import (DistributedContext, all_reduce_sum, barrier, init_distributed,
                                   set_cpu_threads)
from lcm.train.engine import create_engine
from lcm.train.log import PLOT_FILE, TrainingLog, plot_losses
from lcm.train.grad_norm import step_grad_norm, unsharded_grad_norm
from lcm.train.nonfinite import NonFiniteLosses, check_exportable
from lcm.train.options import DistributedOptions, TrainOptions
from lcm.ui import current
from lcm.ui.bars import Bar

LOGS = "logs"


@dataclass
class UnitLoss:
    """What a unit's forward pass of one micro-batch gives the loop."""

    loss: torch.Tensor  # the scalar to back-propagate
    items: int  # what the micro-batch held: concepts, sentences
    metrics: dict[str, float] = field(default_factory=dict)
    """The unit's own figures (logged to TensorBoard as ``head/<name>``)."""


class TrainUnit(Protocol):
    """What one kind of training supplies to the loop; the loop owns everything else."""

    title: str
    """The progress bar's label and the loss plot's title."""
    module: torch.nn.Module
    micro_batch_size: int
    autocast: str | None
    """"bfloat16": matrix products under torch.autocast (weights stay in training precision)."""
    export_at_checkpoints: bool
    """Write the model folder at every checkpoint (a long background run always leaves a
    usable model), not only at the end."""

    def batches(self, position: DataPosition) -> Iterator[Any]:
        """Micro-batches of this rank from ``position`` on."""

    def position(self) -> DataPosition:
        """The position of the next micro-batch ``batches`` would hand out."""

    def forward(self, engine: Any, batch: Any) -> UnitLoss:
        """The loss of one micro-batch through ``engine`` (the wrapped ``module``)."""

    def run_options(self) -> dict[str, Any]:
        """The values a resumed run must share with the run it continues."""

    def at_checkpoint(self, module: torch.nn.Module, state: TrainerState) -> None:
        """Rank 0, in eval mode, RNG restored afterwards: e.g. score held-out data."""

    def counters(self) -> dict[str, float]:
        """This rank's counts of the session (e.g. documents read), summed over ranks into
        ``LoopResult.counters``."""

    def export(self, weights: dict[str, torch.Tensor], state: TrainerState,
               result: LoopResult | None) -> None:
        """Write the model folder from the full fp32 ``weights`` (rank 0); ``result``: the
        session's figures at the end of the run, None at an intermediate checkpoint."""


@dataclass
class StepResult:
    """Local (this rank's) figures of one optimizer step."""

    loss_sum: float  # summed over the step's micro-batches
    micro_batches: int
    items: int
    grad_norm: float
    lr: float  # the learning rate this step used
    metrics: dict[str, float] = field(default_factory=dict)
    """The unit's own figures, averaged over the micro-batches."""


@dataclass
class LoopResult:
    """This session's figures (all ranks): a resumed run's loss from where it took over."""

    steps: int
    first_loss: float
    last_loss: float
    items_per_s: float
    items: int
    seconds: float
    skipped_steps: int
    resumed_from: int
    elapsed_s: float
    """Training time of the whole run, earlier sessions included."""
    counters: dict[str, float] = field(default_factory=dict)
    """The unit's counters, summed over ranks."""


def start_process(options: DistributedOptions, data_workers: int = 0) -> DistributedContext:
    """Join the process group (alone, or under a launcher) and size the CPU threads."""
    context = init_distributed(options.backend)
    if context.device == "cpu":
        set_cpu_threads(options.cpu_threads, data_workers)
    return context


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's generators (a unit calls it before building its module)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TrainingLoop:
    """Trains ``unit`` for ``options.steps`` steps in ``work`` (checkpoints and logs)."""

    def __init__(self, unit: TrainUnit, options: TrainOptions, context: DistributedContext,
                 work: Path):
        self.unit, self.options, self.context, self.work = unit, options, context, work
        self.engine = create_engine(unit.module, options, unit.micro_batch_size, context,
                                    autocast=unit.autocast)
        self.state = TrainerState(world_size=context.world_size, options=unit.run_options())
        self.nonfinite = NonFiniteLosses(options.max_nonfinite_steps, context.device)
        self._batches = unit.batches(DataPosition())
        self._overflows = 0
        self.resumed_from = 0

    def say(self, message: str) -> None:
        """A progress message on stderr (rank 0 only); stdout keeps the outcome line."""
        if self.context.is_main:
            current().status(message)

    # ----------------------------------------------------------------------- one step

    def step(self) -> StepResult:
        """One optimizer step: forward/backward over ``grad_accum`` micro-batches, then update."""
        engine = self.engine
        loss_sum, items, grad_norm, lr = 0.0, 0, None, float(engine.get_lr()[0])
        metrics: dict[str, float] = {}
        for _ in range(self.options.grad_accum):
            output = self.unit.forward(engine, next(self._batches))
            engine.backward(output.loss)
            if engine.is_gradient_accumulation_boundary():
                grad_norm = unsharded_grad_norm(engine)
            engine.step()
            self._note_overflow()
            loss_sum += float(output.loss.detach())
            items += output.items
            for name, value in output.metrics.items():
                metrics[name] = metrics.get(name, 0.0) + value / self.options.grad_accum
        self.state.step += 1
        self.nonfinite.check(loss_sum, self.state.step)
        return StepResult(loss_sum, self.options.grad_accum, items,
                          step_grad_norm(engine, grad_norm), lr, metrics)

    def steps(self, count: int) -> list[StepResult]:
        return [self.step() for _ in range(count)]

    def _note_overflow(self) -> None:
        """Say (once, counted) that DeepSpeed skipped an optimizer step on fp16 overflow."""
        skipped = int(getattr(self.engine, "skipped_steps", 0) or 0)
        if skipped > self._overflows and self.context.is_main:
            current().note(f"fp16 overflow at step {self.state.step + 1}: the optimizer step was "
                           f"skipped and the loss scale lowered", key="overflow step skipped")
        self._overflows = skipped

    # ----------------------------------------------------------------------- a whole run

    def run(self) -> LoopResult:
        """Train to ``train.steps`` (from a checkpoint if asked), log, checkpoint, export."""
        options, context = self.options, self.context
        self._start_or_resume()
        self.engine.module.train()  # from_pretrained leaves modules in eval mode (no dropout)
        self._overflows = int(getattr(self.engine, "skipped_steps", 0) or 0)
        log = TrainingLog(self.work / LOGS, self.state.history, self.state.step) \
            if context.is_main else None
        session_start = time.perf_counter()
        window, session = _Sums(self.state.window), _Sums()
        self.resumed_from = self.state.step
        progress = current().progress(self.unit.title, total=options.steps - self.state.step,
                                      unit="steps") if context.is_main else Bar(self.unit.title)
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
                    window = _Sums()
                if self.state.step % options.checkpoint_every == 0 or done:
                    paused = time.perf_counter()
                    self._checkpoint(session_start, window)
                    if self.unit.export_at_checkpoints and not done:
                        self._export(session_start, None)
                    for clock in (window, session):  # throughput counts training time only
                        clock.started += time.perf_counter() - paused
        finally:
            progress.close()
            if log is not None:
                log.close()
        result = self._result(session, session_start)
        self._export(session_start, result)
        return result

    def _start_or_resume(self) -> None:
        resume = self.options.resumption()
        target = checkpointing.resolve_resume(resume, self.work)
        if target is None:
            if resume.requested:
                self.say(f"train.resume: no checkpoint in {self.work / CHECKPOINTS}; "
                         f"starting afresh")
            stale = [p for p in (self.work / CHECKPOINTS, self.work / LOGS) if p.exists()]
            if stale:  # a fresh run: earlier checkpoints and logs would mix in
                self.say(f"starting afresh: removing {', '.join(map(str, stale))}")
            if self.context.is_main:
                for directory in stale:
                    shutil.rmtree(directory)
            barrier()
            return
        self.state = checkpointing.load(self.engine, target, self.context,
                                        self.unit.run_options())
        checkpointing.restore_rng(self.state.rng)
        self._batches = self.unit.batches(replace(self.state.position))
        self.say(f"resuming from {target} at step {self.state.step}")

    def _log_row(self, window: "_Sums", session_start: float) -> dict[str, float]:
        loss_sum, micro, items = all_reduce_sum([window.loss_sum, window.micro_batches,
                                                 window.items], self.context.device)
        seconds = max(time.perf_counter() - window.started, 1e-9)
        row = {"step": self.state.step, "loss": loss_sum / micro,
               "lr": window.lr, "grad_norm": window.grad_norm,
               "concepts_per_s": items / seconds,
               "elapsed_s": self._elapsed(session_start),
               "skipped_steps": self.engine.skipped_steps}
        self.state.history.append(row)
        return row

    def _elapsed(self, session_start: float) -> float:
        return self.state.elapsed_s + time.perf_counter() - session_start

    def _checkpoint(self, session_start: float, window: "_Sums") -> None:
        saved = replace(self.state, position=self.unit.position(),
                        elapsed_s=self._elapsed(session_start),
                        rng=checkpointing.capture_rng(), window=window.sums())
        checkpointing.save(self.engine, self.work / CHECKPOINTS, saved, self.context,
                           self.options.keep_checkpoints)
        if self.context.is_main:
            if self.state.history:
                plot_losses(self.state.history, self.work / LOGS / PLOT_FILE,
                            title=f"{self.unit.title} loss")
            self._at_checkpoint(saved)
        barrier()

    def _at_checkpoint(self, saved: TrainerState) -> None:
        """The unit's checkpoint work, in eval mode; the RNG is left as training had it."""
        rng = checkpointing.capture_rng()
        module = self.engine.module
        module.eval()
        try:
            self.unit.at_checkpoint(module, saved)
        finally:
            module.train()
            checkpointing.restore_rng(rng)

    def _result(self, session: "_Sums", session_start: float) -> LoopResult:
        training_seconds = max(time.perf_counter() - session.started, 1e-9)
        counters = self.unit.counters()
        items, *counts = all_reduce_sum([session.items, *counters.values()], self.context.device)
        history = [row for row in self.state.history if row["step"] > self.resumed_from]
        first, last = (history[0]["loss"], history[-1]["loss"]) if history else (math.nan, math.nan)
        return LoopResult(self.state.step, first, last, items / training_seconds, int(items),
                          time.perf_counter() - session_start, int(self.engine.skipped_steps),
                          self.resumed_from, self._elapsed(session_start),
                          dict(zip(counters, counts)))

    def _export(self, session_start: float, result: LoopResult | None) -> None:
        """Hand the unit the full weights, once they and the last loss are known finite."""
        weights = self._full_state_dict()
        history = self.state.history
        check_exportable(weights, history[-1]["loss"] if history else None, self.state.step)
        if self.context.is_main:
            self.unit.export(weights, replace(self.state, elapsed_s=self._elapsed(session_start)),
                             result)
        barrier()

    def _full_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole module's weights in fp32 (ZeRO-3 gathers its partitions first)."""
        # lazy: DeepSpeed must not load before init_distributed sets DS_ACCELERATOR
        import deepspeed

        module = self.engine.module
        gathered = (deepspeed.zero.GatheredParameters(list(module.parameters()))
                    if self.engine.zero_optimization_stage() == 3 else contextlib.nullcontext())
        with gathered:
            return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()}


class _Sums:
    """Sums over a span of steps (between two log rows, or a whole session); ``saved``: the
    sums a checkpoint kept of a log window that a resumed run continues."""

    _FIELDS = ("loss_sum", "micro_batches", "items", "grad_norm", "lr")

    def __init__(self, saved: dict[str, float] | None = None) -> None:
        self.started = time.perf_counter()
        self.loss_sum, self.micro_batches, self.items = 0.0, 0, 0
        self.grad_norm = self.lr = 0.0
        for name, value in (saved or {}).items():
            setattr(self, "items" if name == "concepts" else name, value)  # older checkpoints

    def sums(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self._FIELDS}

    def add(self, result: StepResult) -> None:
        self.loss_sum += result.loss_sum
        self.micro_batches += result.micro_batches
        self.items += result.items
        self.grad_norm, self.lr = result.grad_norm, result.lr  # the latest step's
