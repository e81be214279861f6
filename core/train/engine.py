"""The DeepSpeed engine: its config built from a recipe's ``train`` section, and its creation.

The optimizer is DeepSpeed's "Adam" with ``torch_adam`` and ``adam_w_mode``: torch's AdamW
(decoupled weight decay) run by DeepSpeed's engine and ZeRO partitioning, with no native op
to compile, so the first start costs seconds on a CPU and the same config runs on GPUs. Weight
decay applies to matrices only, never to norm gains or biases (nanoGPT's split).
"""
from __future__ import annotations

from functools import partial
from typing import Any

from lcm.errors import UserError
from lcm.train.distributed import DistributedContext
from lcm.train.options import TrainOptions
from lcm.train.schedule import warmup_cosine_scheduler
from lcm.ui.chatter import native_output_to_log

NEVER = 10**12  # DeepSpeed's own step printing: off, the trainer logs


def deepspeed_config(options: TrainOptions, micro_batch_size: int, world_size: int,
                     on_gpu: bool) -> dict[str, Any]:
    """The DeepSpeed JSON config for ``options``."""
    if options.precision == "fp16" and not on_gpu:
        raise UserError("train.precision fp16 needs a GPU; use bf16 or fp32 on a CPU")
    if len(options.betas) != 2:
        raise UserError(f"train.betas must hold two numbers, got {list(options.betas)}")
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": options.grad_accum,
        "train_batch_size": micro_batch_size * options.grad_accum * world_size,
        "gradient_clipping": options.grad_clip,
        "optimizer": {"type": "Adam", "params": {
            "lr": options.lr, "betas": list(options.betas), "eps": options.eps,
            "weight_decay": options.weight_decay, "torch_adam": True, "adam_w_mode": True}},
        "zero_optimization": {"stage": options.zero_stage},
        "bf16": {"enabled": options.precision == "bf16"},
        "fp16": {"enabled": options.precision == "fp16"},
        "steps_per_print": NEVER,
        "wall_clock_breakdown": False,
    }
    return config


def create_engine(model, options: TrainOptions, micro_batch_size: int, context: DistributedContext,
                  autocast: str | None = None):
    """Wrap ``model`` in a DeepSpeed engine with AdamW and the warm-up + cosine schedule.

    ``autocast`` ("bfloat16"): DeepSpeed's torch_autocast, matrix products in that dtype while
    weights, optimizer and checkpoints stay in the training precision.
    """
    # lazy: DeepSpeed must not load before init_distributed sets DS_ACCELERATOR
    import deepspeed

    refuse_scalar_parameters(model)
    config = deepspeed_config(options, micro_batch_size, context.world_size,
                              on_gpu=context.device != "cpu")
    if autocast:
        config["torch_autocast"] = {"enabled": True, "dtype": autocast}
    scheduler = partial(warmup_cosine_scheduler, warmup_steps=options.warmup_steps,
                        total_steps=options.steps, min_ratio=options.min_lr_ratio)
    groups = parameter_groups(model, options.weight_decay)
    with native_output_to_log():  # its process groups print from C++ too
        engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=groups,
                                               config=config, lr_scheduler=scheduler)
    return engine


def refuse_scalar_parameters(model) -> None:
    """A 0-d parameter (``nn.Parameter(torch.tensor(0.5))``) stops DeepSpeed's start-up with
    "self.dim() cannot be 0 to view Float as Byte" (it broadcasts every parameter as bytes);
    name it and the fix before DeepSpeed starts."""
    scalars = [name for name, p in model.named_parameters() if p.dim() == 0]
    if scalars:
        raise UserError(f"parameter {scalars[0]!r}"
                        f"{f' (and {len(scalars) - 1} more)' if len(scalars) > 1 else ''} is 0-d, "
                        f"which DeepSpeed cannot train: give it shape (1,), e.g. "
                        f"nn.Parameter(torch.tensor([0.5])) instead of torch.tensor(0.5)")


def parameter_groups(model, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters in two optimizer groups: those of 2 or more dimensions (weight
    matrices, embeddings) decay; those of fewer (norm gains, biases) do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
