"""The instruction-tuning layout of a source/target pair, shared by training and inference.

As in Meta's LCM, a document/summary pair is one concept sequence::

    source concepts  [source suffix]  target concepts  end concept

The source suffix is an optional separator sentence (the reference's ``source_suffix_text``,
e.g. "Summary:") encoded like any other sentence; the end concept is the encoding of the end
sentence ("End of text."). Training learns only the target side; inference prompts with exactly
the part before it. Both build that part with :func:`build_prompt`, so they cannot drift apart.
A model trained this way records its :class:`InstructionFormat` in its checkpoint (under
``extra["instruction"]``) so the summarize task prompts it the way it was trained.

Functions take torch tensors or numpy arrays (all parts of one call of the same kind) in
whatever space the caller works in; the normalised space is where the model sees them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch

from lcm.errors import InputFileError

DEFAULT_END_SENTENCE = "End of text."
CHECKPOINT_KEY = "instruction"
"""Where a checkpoint's ``extra`` holds the format it was fine-tuned with."""
SOURCE_LENGTH_KEY = "source_len"
"""Meta key of a pair shard document: how many of its sentences are the source (the rest are
the target). Written by ``prepare`` with a ``target_field``."""
FRAMING_FILE = "instruction.json"
"""Beside pair shards: the format and the encoded framing sentences, so training needs no
encoder."""


@dataclass(frozen=True)
class InstructionFormat:
    """The sentences that frame a pair; they are encoded with the model's encoder."""

    source_suffix: Optional[str] = None
    """Separator sentence between source and target; None: the target follows the source."""
    end_sentence: str = DEFAULT_END_SENTENCE
    """Its encoding ends every target; generation stops when it comes."""

    def to_meta(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, extra: Mapping[str, Any]) -> "InstructionFormat | None":
        """The format a checkpoint's ``extra`` records; None for a model never fine-tuned."""
        recorded = extra.get(CHECKPOINT_KEY)
        return cls(**recorded) if recorded else None


@dataclass
class Framing:
    """A format with its sentences encoded (raw encoder space, float32)."""

    format: InstructionFormat
    end: Any  # (D,) numpy array: the end concept
    suffix: Any = None  # (D,) numpy array, or None without a source suffix

    def save(self, directory: str | Path, pairs: int) -> Path:
        """Write ``instruction.json`` beside the pair shards (``pairs``: how many they hold)."""
        target = Path(directory) / FRAMING_FILE
        data = {"format": self.format.to_meta(), "pairs": pairs, "end": self.end.tolist(),
                "suffix": None if self.suffix is None else self.suffix.tolist()}
        target.write_text(json.dumps(data))
        return target

    @classmethod
    def load(cls, directory: str | Path) -> "Framing | None":
        """The framing stored beside a shard set; None for shards of plain documents."""
        path = Path(directory) / FRAMING_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            suffix = data.get("suffix")
            return cls(InstructionFormat(**data["format"]), np.asarray(data["end"], dtype=np.float32),
                       None if suffix is None else np.asarray(suffix, dtype=np.float32))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFileError(path, f"malformed instruction framing: {exc}") from None


def encode_framing(format: InstructionFormat, encoder: Any) -> Framing:
    """Encode the end sentence (and the source suffix) with ``encoder``."""
    texts = [format.end_sentence] + ([format.source_suffix] if format.source_suffix else [])
    vectors = encoder.encode(texts).detach().float().cpu().numpy()
    return Framing(format, vectors[0], vectors[1] if format.source_suffix else None)


def build_prompt(source: Any, suffix: Any = None) -> Any:
    """The part of a pair before its target: ``(S, D)`` source concepts, then the ``(D,)``
    suffix concept when there is one."""
    if suffix is None:
        return source
    return _concat([source, suffix[None]])


def build_pair(source: Any, target: Any, end: Any, suffix: Any = None) -> tuple[Any, Any]:
    """One training sequence ``(L, D)`` and an ``(L,)`` bool mask, True on the concepts the
    model learns to predict (the target concepts and the end concept)."""
    prompt = build_prompt(source, suffix)
    sequence = _concat([prompt, target, end[None]])
    learned = _bool_mask(sequence, len(prompt))
    return sequence, learned


def _concat(parts: list[Any]) -> Any:
    if _is_torch(parts[0]):
        return torch.cat(parts, dim=0)
    return np.concatenate(parts, axis=0)


def _bool_mask(sequence: Any, prompt_length: int) -> Any:
    if _is_torch(sequence):
        mask = torch.ones(len(sequence), dtype=torch.bool, device=sequence.device)
    else:
        mask = np.ones(len(sequence), dtype=bool)
    mask[:prompt_length] = False
    return mask


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch")
