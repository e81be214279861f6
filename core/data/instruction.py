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

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

DEFAULT_END_SENTENCE = "End of text."
CHECKPOINT_KEY = "instruction"
"""Where a checkpoint's ``extra`` holds the format it was fine-tuned with."""


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
        import torch

        return torch.cat(parts, dim=0)
    import numpy as np

    return np.concatenate(parts, axis=0)


def _bool_mask(sequence: Any, prompt_length: int) -> Any:
    if _is_torch(sequence):
        import torch

        mask = torch.ones(len(sequence), dtype=torch.bool, device=sequence.device)
    else:
        import numpy as np

        mask = np.ones(len(sequence), dtype=bool)
    mask[:prompt_length] = False
    return mask


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch")
