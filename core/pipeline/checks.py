"""The checks a pipeline runs once, when it is built: its encoders and decoders work in the
model's concept space, and a head that learned through a decoder decodes with that one."""
from __future__ import annotations

from typing import Any

from lcm.errors import ConceptSpaceMismatchError, UserError
from lcm.interfaces import ConceptSpace, Decoder, TokenLikelihood


def check_spaces(space: ConceptSpace, *components: Any) -> None:
    """Refuse an encoder or decoder of another concept space than the model's."""
    for component_ in components:
        theirs = component_.concept_space(component_.config)
        if theirs is not None and theirs != space:
            raise ConceptSpaceMismatchError(
                f"the model was trained in {space}, but {component_.kind} "
                f"{component_.name!r} works in {theirs}")


def check_decoder(head: Any, decoder: Decoder) -> None:
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
