"""NLLB-200 language codes (``eng_Latn``, ``fra_Latn``, ...), checked with a "did you mean".

The list is read from the card sonar-space ships for its text encoder, so it is exactly the
set the real tokenizer knows, without importing sonar (which would pull in fairseq2 and torch).
"""
from __future__ import annotations

import difflib
import functools
import importlib.util
from pathlib import Path

import yaml

from lcm.errors import UserError

_CARD = "cards/text_sonar_basic_encoder.yaml"


@functools.lru_cache(maxsize=1)
def nllb_languages() -> tuple[str, ...]:
    """Every language code of the SONAR text encoder and decoder (202), in the card's order
    (the order the tokenizer assigns their tokens in)."""
    spec = importlib.util.find_spec("sonar")
    if spec is None or spec.origin is None:
        raise UserError("sonar-space is not installed: pip install sonar-space==0.5.0")
    card = yaml.safe_load(Path(spec.origin).parent.joinpath(_CARD).read_text())
    return tuple(card["tokenizer_config"]["_set_"]["langs"])


def check_language(code: str, option: str) -> str:
    """``code`` if SONAR knows it; otherwise a UserError naming the option and the closest codes."""
    problem = language_problem(code, option)
    if problem:
        raise UserError(problem)
    return code


def language_problem(code: str, option: str) -> str | None:
    """Why SONAR does not know ``code`` (naming the option and the closest codes), or None."""
    known = nllb_languages()
    if code in known:
        return None
    lowered = code.lower()
    close = [k for k in sorted(known) if k.lower() == lowered or k.split("_")[0] == lowered] \
        or difflib.get_close_matches(code, sorted(known), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else \
        " (codes look like eng_Latn, fra_Latn, zho_Hans: ISO 639-3 + script)"
    return f"{option}: unknown language code {code!r}{hint}"
