"""The schema of a ``train`` recipe: data, model, head, optimisation, distribution, output.

Plain dataclasses (no torch): ``lcm recipes validate`` and ``lcm plugins list`` import this.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from lcm.fields import ComponentSection, bounded, choice, component, path
from lcm.torch_options import PRECISIONS

ZERO_STAGES = (0, 1, 2, 3)
BACKENDS = ("auto", "gloo", "nccl")
STYLES = ("pretrain", "supervised")


@dataclass
class DataOptions:
    shards: str = path(must_exist=True, space_source=True,
                       help="directory of webdataset shards written by the prepare task")
    normalizer: str = path(must_exist=True, help="normalizer.json from the fit_normalizer task")
    max_concepts: int = bounded(128, ge=2)
    """Documents longer than this are wrapped into consecutive windows (the reference: 128); a
    window needs two concepts (a context and a next one)."""
    batch_size: int = bounded(8, ge=1)
    """Windows per micro-batch on each device (DeepSpeed's train_micro_batch_size_per_gpu)."""
    num_workers: int = bounded(0, ge=0)
    """DataLoader worker processes; shards are split by rank, then by worker."""
    shuffle_buffer: int = bounded(2000, ge=1)
    """Windows held for shuffling; the order is a function of (seed, epoch) only."""


@dataclass
class ModelOptions:
    arch: str = "toy"
    """A named architecture of lcm.model (toy, small, ...)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Fields of the architecture's config to change, e.g. {num_layers: 2}."""
    init_from: Optional[str] = path(None, must_exist=True, space_source=True, help=(
        "start from this checkpoint's weights (train's output; same arch and head), e.g. to "
        "fine-tune a pre-trained model"))


@dataclass
class TrainOptions:
    style: str = choice("pretrain", STYLES, help=(
        "pretrain: predict every next concept of documents; supervised: shards of source/target "
        "pairs (prepare with target_field), only the target and its end concept are learned"))
    steps: int = bounded(1000, ge=1)
    """Optimizer steps (each is grad_accum micro-batches on every rank)."""
    lr: float = bounded(4e-4, ge=0)
    warmup_steps: int = bounded(100, ge=0)
    min_lr_ratio: float = bounded(0.1, ge=0, le=1)
    """The cosine schedule ends at lr * min_lr_ratio."""
    weight_decay: float = bounded(0.1, ge=0)
    """Decoupled (AdamW) weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-5
    grad_clip: float = bounded(25.0, ge=0)
    """Clip the global gradient norm at this value (0 turns clipping off)."""
    grad_accum: int = bounded(1, ge=1)
    zero_stage: int = choice(0, ZERO_STAGES, help="DeepSpeed ZeRO stage")
    precision: str = choice("fp32", PRECISIONS, help="fp16 needs a GPU")
    seed: int = 0
    checkpoint_every: int = bounded(500, ge=1)
    keep_checkpoints: int = bounded(2, ge=1)
    log_every: int = bounded(10, ge=1)
    export_dtype: str = choice("fp32", PRECISIONS, help=(
        "dtype of the exported model's weights; fp16 halves the file (loading casts back)"))
    max_nonfinite_steps: int = bounded(3, ge=1)
    """Stop (exit 1, no model exported) after this many consecutive steps whose loss is NaN or
    inf; fp16 overflow steps that DeepSpeed skips are counted in the log either way."""
    resume: Union[bool, str] = False
    """true: continue from the output's latest checkpoint (or start if there is none);
    a path: continue from that checkpoint directory."""

    def resumption(self) -> "Resume":
        """``resume`` decoded (the one place that reads it)."""
        return Resume.parse(self.resume)


@dataclass(frozen=True)
class Resume:
    """What ``train.resume`` asks for: nothing, the run's latest checkpoint, or a folder."""

    latest: bool = False
    folder: Optional[Path] = None

    @classmethod
    def parse(cls, value: Union[bool, str, None]) -> "Resume":
        if value is None or value is False or value in ("", "false", "False"):
            return cls()
        if value is True or value in ("true", "True"):
            return cls(latest=True)
        return cls(folder=Path(str(value)))

    @property
    def requested(self) -> bool:
        """A resumed run carries on the earlier run's checkpoints, logs and model."""
        return self.latest or self.folder is not None


@dataclass
class DistributedOptions:
    backend: str = choice("auto", BACKENDS, help="auto: nccl on GPUs, gloo on CPU")
    cpu_threads: int = bounded(0, ge=0)
    """Torch threads per rank when training on a CPU; 0: the rank's share of the cores that
    other processes leave free (by the load average), minus its data workers (oversubscribed
    OpenMP threads make small models many times slower)."""


class TrainingPaths:
    """For a recipe with ``output`` and ``training_dir``: where checkpoints and logs go."""

    def training_path(self) -> Path:
        """Kept apart from ``output`` so the model directory stays small enough to copy."""
        if self.training_dir:
            return Path(self.training_dir)
        output = Path(self.output)
        return output.with_name(output.name + "-training")


@dataclass
class TrainRecipe(TrainingPaths):
    """The ``train`` task's recipe."""

    output: str = path(output="dir", help="directory of the trained model (an inference checkpoint)")
    data: DataOptions  # required: it names the shards and the normaliser
    model: ModelOptions = field(default_factory=ModelOptions)
    head: ComponentSection = component("head", default="mse", help="the prediction head and its options")
    train: TrainOptions = field(default_factory=TrainOptions)
    distributed: DistributedOptions = field(default_factory=DistributedOptions)
    training_dir: Optional[str] = path(
        None, output="dir", help="checkpoints and logs; default: <output>-training beside output")
