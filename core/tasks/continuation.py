"""What the tasks that continue documents share (generate, summarize): stop options and the
loop's rules from them, the checks of a model's encoder and decoder (concept space, the decoder
a head learned through), counts."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

from lcm.errors import ConceptSpaceMismatchError, UserError
from lcm.interfaces import TokenLikelihood

NO_SENTENCES = "no sentences after segmentation"


@dataclass
class StopConfig:
    end_sentence: Optional[str] = "End of text."
    """Its encoding is the end concept; None disables this rule."""
    end_threshold: float = 0.9
    """Stop when a new concept's cosine to the end concept exceeds this."""
    repetition_threshold: Optional[float] = 0.9
    """Stop when a new concept's cosine to the previous one exceeds this; None disables."""


@dataclass(kw_only=True)
class ContinuationOptions:
    """Recipe fields of the tasks that continue documents with a trained model."""

    stop: StopConfig = field(default_factory=StopConfig)
    sampling: dict[str, Any] = field(default_factory=dict)
    """Head options of the model to change for this run, among those its head lets change
    (e.g. ``{diffusion: {inference_steps: 10}}``); the rest are the checkpoint's own."""
    seed: int = 0
    """Seeds heads that sample, so a run is reproducible."""
    device: str = "cpu"
    language: Optional[str] = None
    """Output language for decoders of multilingual spaces (None: the decoder's default)."""
    show: bool = True
    """Print each document's result as it is made."""


def check_spaces(space: Any, encoder: Any, decoder: Any) -> None:
    """Refuse an encoder or decoder of another concept space than the model's."""
    for component_ in (encoder, decoder):
        theirs = component_.concept_space(component_.config)
        if theirs is not None and theirs != space:
            raise ConceptSpaceMismatchError(
                f"the model was trained in {space}, but {component_.kind} "
                f"{component_.name!r} works in {theirs}")


def check_decoder(head: Any, decoder: Any) -> None:
    """Refuse to decode with another decoder than the one a head learned through (its concepts
    are made to be read by those weights)."""
    expected = head.trained_through()
    if expected is None:
        return
    actual = (decoder.weights_identity() if isinstance(decoder, TokenLikelihood)
              else {"decoder": decoder.name})
    if actual != expected:
        raise UserError(f"the model's head {head.name!r} learned through decoder "
                        f"{_identity(expected)}, but this recipe decodes with {_identity(actual)}; "
                        f"decode with the decoder it learned through")


def _identity(identity: dict[str, str]) -> str:
    model = identity.get("model")
    return f"{identity['decoder']!r}" + (f" ({model})" if model else "")


def stop_rules(stop: StopConfig, max_new_concepts: int, text_encoder: Any) -> Any:
    """The loop's StopRules for ``stop``; the end sentence is encoded with ``text_encoder``."""
    from lcm.generate.loop import StopRules

    rules = StopRules(max_new_concepts, None, stop.end_threshold, stop.repetition_threshold)
    if stop.end_sentence:
        rules.end_concept = text_encoder.encode([stop.end_sentence])[0].float()
    return rules


def format_counts(counter: Counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counter.items())) or "none"
