"""Options a head needs to be built in a test, by head name.

A head whose options have required fields (the quantised heads need a fitted quantizer) puts a
callable here: ``(tmp_path, concept_dim) -> options``. Suites that build every registered head
(the contract tests) call ``head_spec(name, tmp_path, concept_dim)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from lcm.interfaces import ConceptSpace


def _quantizer_options(tmp_path: Path, concept_dim: int) -> dict[str, Any]:
    from tests._quant_fixtures import fit_tiny_quantizer

    space = ConceptSpace("head_test_space", concept_dim)
    return {"quantizer": str(fit_tiny_quantizer(tmp_path / "quantizer", space))}


def _decoder_ce_options(tmp_path: Path, concept_dim: int) -> dict[str, Any]:
    """A decoder trained once per session (in pytest's base temp folder) for the head's space
    and the normaliser ``toy_head_model`` binds."""
    from tests._decoder_ce_fixtures import trained_decoder
    from tests._model_fixtures import toy_normalizer

    space = ConceptSpace("head_test_space", concept_dim)
    folder = trained_decoder(tmp_path.parent / f"decoder_ce_decoder_{concept_dim}", space,
                             toy_normalizer(space))
    return {"decoder": {"name": "learned", "model": str(folder)}, "mse_weight": 0.1}


HEAD_TEST_OPTIONS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "quant_d": _quantizer_options,
    "quant_c": _quantizer_options,
    "decoder_ce": _decoder_ce_options,
}


def head_spec(name: str, tmp_path: Path, concept_dim: int) -> dict[str, Any]:
    """``{name: ..., **options}`` building head ``name`` at ``concept_dim`` (no options: {})."""
    options = HEAD_TEST_OPTIONS.get(name)
    return {"name": name, **(options(tmp_path, concept_dim) if options else {})}
