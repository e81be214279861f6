"""Encoder ``learned``: the encoder of a concept space trained by ``train_space``.

It loads the space folder's ``encoder/`` (a sentence-transformers folder) on the first encode,
so listing plugins or validating a recipe reads only the folder's ``concept_space.json``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from lcm.errors import InputFileError, UserError
from lcm.fields import bounded, path
from lcm.interfaces import ConceptSpace, Encoder
from lcm.spaces import read_space
from lcm.torch_options import torch_device


@dataclass
class LearnedEncoderConfig:
    model: str = path(must_exist=True, space_source=True,
                      help="space folder written by the train_space task (holds encoder/)")
    batch_size: int = bounded(64, ge=1, help="sentences per forward pass")
    device: str = "auto"
    """"auto" (CUDA when available, else CPU), or a torch device such as "cpu"."""


class LearnedEncoder(Encoder):
    name = "learned"
    description = "encoder of a concept space trained by lcm (train_space), with its decoder"
    modalities = ("text",)
    Config = LearnedEncoderConfig

    def __init__(self, config: LearnedEncoderConfig | None = None):
        super().__init__(config)
        self._model: Any = None

    @classmethod
    def concept_space(cls, config: LearnedEncoderConfig) -> ConceptSpace | None:
        return read_space(config.model) if config.model else None

    def encode(self, inputs: Sequence[str]):
        space = self.concept_space(self.config)
        if space is None:
            raise UserError(f"encoder learned: {self.config.model} records no concept space")
        if not inputs:
            return torch.empty(0, space.dim)
        vectors = self.model.encode(list(inputs), batch_size=self.config.batch_size,
                                    convert_to_tensor=True, show_progress_bar=False)
        return vectors.float().cpu()

    @property
    def model(self) -> Any:
        if self._model is None:
            # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
            from lcm.plugins.learned.space.model import ENCODER_DIR, load_sentence_encoder

            folder = Path(self.config.model) / ENCODER_DIR
            if not folder.is_dir():
                raise InputFileError(self.config.model, f"not a learned space (no {ENCODER_DIR}/); "
                                                        f"train one with the train_space task")
            self._model = load_sentence_encoder(folder, str(torch_device(self.config.device)))
        return self._model
