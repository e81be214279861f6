"""Memory per GPU under each ZeRO stage, the largest micro-batch, step time and days.

* Parameters: counted on a model built on the meta device from the recipe's architecture and head.
* Model states: DeepSpeed's own estimators (``estimate_zero2_model_states_mem_needs``,
  ``estimate_zero3_model_states_mem_needs``, no offload) count 16-bit weights and, per parameter,
  18 bytes of 16/32-bit gradients, fp32 master weights and Adam moments. DeepSpeed has none for
  stages 0 and 1; they get the same byte count with nothing partitioned (stage 0) or the fp32
  states partitioned and the 16-bit gradients whole (stage 1).
* Activations: the bytes autograd saves in one traced forward pass (``lcm.plan.trace``), bf16.
* The largest micro-batch: windows of ``data.max_concepts`` whose activations fit in what the
  model states leave of the GPU, after ``RESERVE`` of it is kept for the CUDA context, allocator
  fragmentation and communication buckets.
* Time: the traced training FLOPs per GPU per step over (peak FLOP/s x MFU); communication is
  assumed hidden behind compute.
"""
from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import asdict, dataclass, field

import torch

from lcm.interfaces import ConceptSpace
from lcm.model.lcm import build_model, count_parameters
from lcm.plan.trace import trace_training_forward
from lcm.train.options import TrainRecipe

RESERVE = 0.10
"""Share of each GPU's memory a plan leaves free (CUDA context, fragmentation, buffers)."""
TRACE_WINDOWS = 2
"""Windows in the traced batch (activations and FLOPs are per window, so any small number)."""


@dataclass
class Cluster:
    """The machines a plan is for and the speed assumed of them."""

    gpus_per_node: int
    nodes: int = 1
    gpu_memory: float = 80 * 2 ** 30
    peak_flops: float = 312e12
    """Dense bf16 FLOP/s of one GPU (A100: 312 TFLOP/s)."""
    mfu: float = 0.4
    """Model FLOP utilisation: the share of the peak a training step achieves."""

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes


@dataclass
class StagePlan:
    """What one ZeRO stage leaves for activations on each GPU."""

    stage: int
    model_states: float  # bytes per GPU
    fits: bool  # the model states and the recipe's micro-batch fit
    max_micro_batch: int  # windows of max_concepts per GPU; 0: not even one


@dataclass
class Plan:
    arch: str
    head: str
    parameters: int
    concept_dim: int
    window: int
    micro_batch: int
    grad_accum: int
    zero_stage: int
    gpus: int
    activation_bytes_per_window: float
    train_flops_per_window: float
    concepts_per_step: int
    steps: int
    concepts: float
    step_seconds: float
    days: float
    peak_flops: float
    mfu: float
    gpu_memory: float
    recipe_precision: str
    """The recipe's ``train.precision``; the plan itself always counts bf16 mixed precision."""
    stages: list[StagePlan] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def model_state_bytes(stage: int, parameters: int, largest_layer: int, cluster: Cluster) -> float:
    """Bytes of weights, gradients and optimiser state per GPU (see the module docstring)."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    with contextlib.redirect_stdout(sys.stderr):  # DeepSpeed logs to stdout on import: keep --json clean
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    if stage == 3:
        return estimate_zero3_model_states_mem_needs(
            parameters, largest_layer, cluster.gpus_per_node, cluster.nodes, cpu_offload=False,
            cpu_offload_params=False)[1]
    if stage == 2:
        return estimate_zero2_model_states_mem_needs(
            parameters, cluster.gpus_per_node, cluster.nodes, cpu_offload=False)[1]
    if stage == 1:  # 16-bit weights and gradients whole; fp32 gradients, weights, moments sharded
        return 4 * parameters + 16 * parameters / cluster.gpus
    return 20 * parameters  # DeepSpeed's 2 + 18 bytes per parameter, nothing sharded


def largest_layer_parameters(model: torch.nn.Module) -> int:
    """Parameters of the largest single module (what ZeRO-3 gathers at once)."""
    return max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())


def make_plan(recipe: TrainRecipe, concept_dim: int, cluster: Cluster,
              concepts: float | None = None) -> Plan:
    """The plan of ``recipe`` on ``cluster``; ``concepts``: train on this many (else the
    recipe's ``train.steps``)."""
    with torch.device("meta"):
        model = build_model(recipe.model.arch, recipe.model.overrides, recipe.head,
                            ConceptSpace("plan", concept_dim))
    parameters, largest = count_parameters(model), largest_layer_parameters(model)
    window = recipe.data.max_concepts
    cost = trace_training_forward(model, TRACE_WINDOWS, window)
    per_window_bytes = cost.activation_bytes / TRACE_WINDOWS
    per_window_flops = cost.train_flops / TRACE_WINDOWS
    micro, accum = recipe.data.batch_size, recipe.train.grad_accum
    concepts_per_step = micro * accum * window * cluster.gpus
    steps = recipe.train.steps if concepts is None else math.ceil(concepts / concepts_per_step)
    step_seconds = micro * accum * per_window_flops / (cluster.peak_flops * cluster.mfu)
    stages = []
    for stage in range(4):
        states = model_state_bytes(stage, parameters, largest, cluster)
        free = cluster.gpu_memory * (1 - RESERVE) - states
        largest_batch = max(0, int(free // per_window_bytes))
        stages.append(StagePlan(stage, states, largest_batch >= micro, largest_batch))
    return Plan(recipe.model.arch, recipe.head.name, parameters, concept_dim, window, micro, accum,
                recipe.train.zero_stage, cluster.gpus, per_window_bytes, per_window_flops,
                concepts_per_step, steps, float(steps * concepts_per_step), step_seconds,
                steps * step_seconds / 86400, cluster.peak_flops, cluster.mfu,
                cluster.gpu_memory, recipe.train.precision, stages)
