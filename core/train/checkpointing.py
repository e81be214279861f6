"""Training checkpoints: DeepSpeed's state plus the trainer's, committed atomically.

Layout under ``<output>/checkpoints``::

    step_00000200/          DeepSpeed's files (weights, ZeRO optimizer partitions, scheduler)
                            + trainer_state_rank<R>.json (step, data position, RNG, loss history)
    step_00000200.partial/  a checkpoint being written; never read
    latest                  the name of the newest complete checkpoint

Every rank writes into ``<name>.partial``; rank 0 renames it to ``<name>`` (the commit) and then
replaces ``latest`` through a temporary file. A kill at any moment leaves either the previous
checkpoint or the new one, never a half-written one that resume would read.

Nothing of a checkpoint is unpickled freely: the trainer state is JSON, and DeepSpeed's files are
read with ``torch.load(weights_only=True)`` and only the globals DeepSpeed needs allowed, so a
crafted checkpoint cannot run code on ``train.resume``.
"""
from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcm.errors import InputFileError, UserError
from lcm.outputs import write_text_atomically
from lcm.train.data import DataPosition
from lcm.train.distributed import DistributedContext, barrier
from lcm.train.options import Resume
from lcm.train.safe_load import weights_only_loading

CHECKPOINTS = "checkpoints"
LATEST = "latest"
PARTIAL = ".partial"
_STEP_DIR = re.compile(r"^step_(\d+)$")
_DEEPSPEED_MODEL_FILE = "mp_rank_00_model_states.pt"


@dataclass
class TrainerState:
    """What the trainer needs, beyond DeepSpeed's state, to continue a run exactly."""

    step: int = 0
    position: DataPosition = field(default_factory=DataPosition)
    history: list[dict[str, float]] = field(default_factory=list)
    """One row per logged step (the CSV log's rows), kept so a resumed log is complete."""
    world_size: int = 1
    elapsed_s: float = 0.0
    """Training time of all earlier sessions of this run."""
    rng: dict[str, Any] = field(default_factory=dict)
    window: dict[str, float] = field(default_factory=dict)
    """Sums of the log window open at the checkpoint, so a resumed run logs the same rows."""
    options: dict[str, Any] = field(default_factory=dict)
    """The recipe values that define the run (``run_options``); a resume must not change them."""


def step_name(step: int) -> str:
    return f"step_{step:08d}"


def state_file(directory: Path, rank: int) -> Path:
    return directory / f"trainer_state_rank{rank}.json"


def is_complete(directory: Path) -> bool:
    """A committed checkpoint directory (not a partial one, nothing missing)."""
    return (bool(_STEP_DIR.match(directory.name)) and state_file(directory, 0).is_file()
            and (directory / _DEEPSPEED_MODEL_FILE).is_file())


def capture_rng() -> dict[str, Any]:
    """Every random generator's state as plain JSON values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
             "torch": _bytes_to_text(torch.get_rng_state())}
    if torch.cuda.is_available():
        state["cuda"] = [_bytes_to_text(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_text_to_bytes(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_text_to_bytes(s) for s in state["cuda"]])


def _bytes_to_text(tensor) -> str:
    return base64.b64encode(tensor.numpy().tobytes()).decode("ascii")


def _text_to_bytes(text: str):
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def save(engine, root: Path, state: TrainerState, context: DistributedContext,
         keep: int) -> Path:
    """Write a checkpoint of ``engine`` and ``state`` (collective: every rank calls it)."""
    name = step_name(state.step)
    partial, final = root / (name + PARTIAL), root / name
    if context.is_main:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)  # left by a run killed while saving
    barrier()
    engine.save_checkpoint(str(root), tag=partial.name, save_latest=False)
    state_file(partial, context.rank).write_text(json.dumps(_as_dict(state)))
    barrier()
    if context.is_main:
        if final.exists():  # re-reached after resuming from an older checkpoint
            shutil.rmtree(final)
        os.rename(partial, final)
        write_text_atomically(root / LATEST, name)
        _prune(root, keep)
    barrier()
    return final


def _as_dict(state: TrainerState) -> dict[str, Any]:
    return {"step": state.step, "position": asdict(state.position), "history": state.history,
            "world_size": state.world_size, "elapsed_s": state.elapsed_s, "rng": state.rng,
            "window": state.window, "options": state.options}


RUN_OPTIONS = {"data": ("batch_size", "max_concepts", "shuffle_buffer"),
               "train": ("style", "lr", "warmup_steps", "min_lr_ratio", "weight_decay", "betas",
                         "eps", "grad_clip", "grad_accum", "seed", "precision", "zero_stage")}
"""What a resumed run must share with the run it continues (``train.steps`` may grow)."""


def run_options(recipe: Any, names: dict[str, tuple[str, ...]] = RUN_OPTIONS) -> dict[str, Any]:
    """The values of ``names`` (by default ``RUN_OPTIONS``) in a recipe, by dotted name."""
    return {f"{section}.{name}": _plain(getattr(getattr(recipe, section), name))
            for section, names_ in names.items() for name in names_}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def changed_options(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``name: was -> now`` for every run option a resume would change."""
    return [f"{name} {saved[name]!r} -> {value!r}" for name, value in current.items()
            if name in saved and saved[name] != value]


def _prune(root: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints, and stale partial ones."""
    complete = sorted(d for d in root.iterdir() if d.is_dir() and is_complete(d))
    for old in complete[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    for stale in root.glob("*" + PARTIAL):
        shutil.rmtree(stale, ignore_errors=True)


def find_latest(root: Path) -> Path | None:
    """The checkpoint to resume from: ``latest`` if it names a complete one, else the newest."""
    if not root.is_dir():
        return None
    pointer = root / LATEST
    if pointer.is_file():
        named = root / pointer.read_text().strip()
        if is_complete(named):
            return named
    complete = sorted(d for d in root.iterdir() if d.is_dir() and is_complete(d))
    return complete[-1] if complete else None


def resolve_resume(resume: "Resume", training_dir: Path) -> Path | None:
    """The checkpoint directory ``resume`` asks for (None: start afresh)."""
    if resume.latest:
        return find_latest(training_dir / CHECKPOINTS)
    if resume.folder is None:
        return None
    target = resume.folder  # a step directory, a checkpoints directory or a training_dir
    if is_complete(target):
        return target
    found = find_latest(target) or find_latest(target / CHECKPOINTS)
    if found is None:
        raise InputFileError(target, "no complete training checkpoint here to resume from")
    return found


def load(engine, directory: Path, context: DistributedContext,
         options: dict[str, Any]) -> TrainerState:
    """Restore ``engine`` (weights, optimizer, scheduler) and return the trainer's state.

    ``options``: this recipe's ``run_options``; a checkpoint of a run with others is refused.
    """
    path = state_file(directory, context.rank)
    if not path.is_file():
        raise UserError(f"{directory}: no trainer state for rank {context.rank} ({path.name}); "
                        f"the checkpoint was written by a run with fewer ranks or an older lcm")
    try:
        data = json.loads(path.read_text())
        state = TrainerState(int(data["step"]), DataPosition(**data["position"]),
                             list(data["history"]), int(data["world_size"]),
                             float(data["elapsed_s"]), dict(data["rng"]),
                             dict(data.get("window", {})), dict(data.get("options", {})))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"malformed trainer state: {exc}") from None
    if state.world_size != context.world_size:
        raise UserError(f"{directory}: written by {state.world_size} ranks, resumed with "
                        f"{context.world_size}; the data order would change")
    changed = changed_options(state.options, options)
    if changed:
        raise UserError(f"{directory}: resuming would change {', '.join(changed)}; set them back "
                        f"or start afresh (train.resume=false)")
    with weights_only_loading(engine):
        loaded, _ = engine.load_checkpoint(str(directory.parent), tag=directory.name)
    if loaded is None:
        raise InputFileError(directory, "DeepSpeed could not load this checkpoint")
    return state
