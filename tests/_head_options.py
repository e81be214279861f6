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


HEAD_TEST_OPTIONS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "quant_d": _quantizer_options,
    "quant_c": _quantizer_options,
}


def head_spec(name: str, tmp_path: Path, concept_dim: int) -> dict[str, Any]:
    """``{name: ..., **options}`` building head ``name`` at ``concept_dim`` (no options: {})."""
    options = HEAD_TEST_OPTIONS.get(name)
    return {"name": name, **(options(tmp_path, concept_dim) if options else {})}
