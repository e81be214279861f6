"""Training a concept model (trunk + head) on shards: the ``train`` task's unit of the loop.

It builds the model in the shards' concept space with its normaliser, streams windows of
documents (or supervised source/target pairs), and exports an inference checkpoint.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterator

import torch

from lcm.model.checkpoint import save_checkpoint
from lcm.model.lcm import build_model
from lcm.torch_options import torch_dtype
from lcm.train import checkpointing
from lcm.train.checkpointing import TrainerState
from lcm.train.data import Batch, BatchStream, DataPosition
from lcm.train.distributed import DistributedContext, all_reduce_sum
from lcm.train.inputs import check_inputs
from lcm.train.loop import LoopResult, TrainingLoop, UnitLoss, seed_everything, start_process
from lcm.train.options import TrainRecipe
from lcm.train.supervised import instruction_extra, load_initial_weights, training_framing
from lcm.ui import current

OUTCOME_FILE = "outcome.json"


@dataclass
class TrainingOutcome:
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


class ConceptModelUnit:
    """The concept model of a ``train`` recipe, its batch stream and its export."""

    title = "train"
    export_at_checkpoints = False
    autocast = None

    def __init__(self, recipe: TrainRecipe, context: DistributedContext):
        self.recipe, self.context = recipe, context
        inputs = check_inputs(recipe.data.shards, recipe.data.normalizer)
        self.space, self.normalizer = inputs.space, inputs.normalizer
        self.framing = training_framing(recipe.train.style, recipe.data.shards)
        self.micro_batch_size = recipe.data.batch_size
        seed_everything(recipe.train.seed)
        self.module = self.build_model()
        if recipe.model.init_from:
            load_initial_weights(self.module, recipe.model.init_from, self.normalizer)
        self.dtype = torch_dtype(recipe.train.precision)
        self.stream: BatchStream | None = None

    def build_model(self):
        options = self.recipe.model
        model = build_model(options.arch, options.overrides, self.recipe.head, self.space)
        model.head.bind_normalizer(self.normalizer)
        return model

    def batches(self, position: DataPosition) -> Iterator[Batch]:
        data = self.recipe.data
        self.stream = BatchStream(data.shards, self.normalizer, max_concepts=data.max_concepts,
                                  batch_size=data.batch_size, shuffle_buffer=data.shuffle_buffer,
                                  num_workers=data.num_workers, seed=self.recipe.train.seed,
                                  rank=self.context.rank, world_size=self.context.world_size,
                                  position=position, framing=self.framing,
                                  with_text=self.recipe.head.cls.reads_sentences)
        return iter(self.stream)

    def position(self) -> DataPosition:
        return replace(self.stream.position)

    def forward(self, engine: Any, batch: Batch) -> UnitLoss:
        target_mask = None if batch.target_mask is None else batch.target_mask.to(engine.device)
        output = engine(batch.concepts.to(engine.device, self.dtype), batch.mask.to(engine.device),
                        target_mask, batch.sentences)
        return UnitLoss(output.loss, batch.num_concepts, output.metrics)

    def run_options(self) -> dict[str, Any]:
        return checkpointing.run_options(self.recipe)

    def at_checkpoint(self, module: torch.nn.Module, state: TrainerState) -> None:
        """Nothing: the concept model is scored by the ``evaluate`` task."""

    def counters(self) -> dict[str, float]:
        stream = self.stream
        return {"documents_read": stream.documents_read, "windows_skipped": stream.windows_skipped,
                "sources_cut": stream.sources_cut}

    def outcome(self, result: LoopResult) -> TrainingOutcome:
        """The run's figures (the stream's counts summed over ranks)."""
        counts = {name: int(value) for name, value in result.counters.items()}
        return TrainingOutcome(result.steps, result.first_loss, result.last_loss,
                               result.items_per_s, result.seconds, counts["documents_read"],
                               counts["windows_skipped"], str(self.recipe.output),
                               counts["sources_cut"], result.skipped_steps, result.resumed_from)

    def export(self, weights: dict[str, torch.Tensor], state: TrainerState,
               result: LoopResult | None) -> None:
        """Save the inference checkpoint (fp32 weights, normaliser) and ``outcome.json``."""
        model = self.build_model()
        model.load_state_dict(weights)
        outcome = self.outcome(result)
        save_checkpoint(self.recipe.output, model, self.normalizer,
                        extra={"training": asdict(outcome), "train": asdict(self.recipe.train),
                               **instruction_extra(self.framing)},
                        dtype=self.recipe.train.export_dtype)
        (self.recipe.training_path() / OUTCOME_FILE).write_text(json.dumps(asdict(outcome),
                                                                           indent=2))


def trainer(recipe: TrainRecipe) -> TrainingLoop:
    """The loop of a ``train`` recipe, its engine built (named set-up steps, in order)."""
    context = start_process(recipe.distributed, recipe.data.num_workers)
    started = time.perf_counter()
    unit = ConceptModelUnit(recipe, context)
    loop = TrainingLoop(unit, recipe.train, context, recipe.training_path())
    options = recipe.train
    loop.say(f"DeepSpeed engine ready in {time.perf_counter() - started:.1f} s "
             f"(ZeRO stage {options.zero_stage}, {options.precision}, "
             f"{context.world_size} rank(s), {context.backend} on {context.device}, "
             f"{torch.get_num_threads()} torch thread(s))")
    return loop


def train(recipe: TrainRecipe) -> TrainingOutcome:
    """Run a ``train`` recipe and print its outcome line."""
    loop = trainer(recipe)
    outcome = loop.unit.outcome(loop.run())
    if loop.context.is_main:
        current().outcome(outcome.line(), {"task": "train", **asdict(outcome)})
    return outcome


def measure_throughput(recipe: TrainRecipe, steps: int, warmup_steps: int = 1) -> float:
    """Concepts per second (all ranks) over ``steps`` optimizer steps after ``warmup_steps``.

    Writes nothing: no checkpoints, logs or model. For benchmarks.
    """
    loop = trainer(recipe)
    loop.steps(warmup_steps)
    started = time.perf_counter()
    results = loop.steps(steps)
    seconds = time.perf_counter() - started
    (concepts,) = all_reduce_sum([sum(r.items for r in results)], loop.context.device)
    return concepts / seconds
