"""Options every SONAR component shares: where the weights are, the space, device and dtype.

Three ways to name weights, all loaded through fairseq2 asset cards:
  1. ``card``: a card name (sonar-space ships cards whose files fairseq2 downloads);
  2. ``checkpoint`` (+ ``tokenizer`` for text): local files; the plugin writes a card for them
     that inherits everything else from ``card``;
  3. ``cards_dir``: a folder of the user's own card YAML files, searched before the built-in ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from lcm.fields import bounded, choice, path
from lcm.torch_options import PRECISIONS

SPACE_NAME = "sonar"
SONAR_DIM = 1024


@dataclass
class SonarModelOptions:
    card: str = ""
    """fairseq2 asset card naming the model (each component sets its own default)."""
    checkpoint: Optional[str] = path(None, must_exist=True,
                                     help="local checkpoint file; a card for it is written "
                                          "privately, inheriting architecture and tokenizer "
                                          "settings from `card`")
    tokenizer: Optional[str] = path(None, must_exist=True,
                                    help="local SentencePiece model for `checkpoint`")
    tokenizer_langs: Optional[list[str]] = None
    """The languages (NLLB codes) a local ``tokenizer`` was built with, when they are not the
    basic card's 202: each adds a control token, so the list must match the model's vocabulary.
    The default language is eng_Latn if listed, else the first."""
    cards_dir: Optional[str] = path(None, must_exist=True,
                                    help="folder of your own fairseq2 asset cards (YAML)")
    model_config: Optional[dict[str, Any]] = None
    """Architecture overrides merged into the card's ``model_config`` (for a checkpoint that is
    not the standard size, e.g. ``{model_dim: 512, num_encoder_layers: 6}``)."""
    dim: int = bounded(SONAR_DIM, ge=1)
    """Dimension of the concept space; checked against the loaded model."""
    device: str = "auto"
    """"auto" (CUDA when available, else CPU), or a torch device such as "cpu", "cuda:1"."""
    dtype: str = choice("fp32", PRECISIONS, help="weights and activations: fp32, fp16 or bf16")
    batch_size: int = bounded(16, ge=1)
    """Most inputs per forward pass. 16 suits a CPU: with inputs sorted by length, several
    small batches pad less than one big one (measured 4.6 vs 2.9 sentences/s at the real
    encoder size, benchmarks/bench_sonar.py); on a GPU raise it (e.g. 256) with ``max_tokens``."""

    def problems(self) -> list[str]:
        """A model must be named, by card or by local files."""
        if not self.card and not self.checkpoint:
            return ["name a model with `card`, or local files with `checkpoint`"]
        if self.tokenizer_langs is not None and not (self.tokenizer and self.tokenizer_langs):
            return ["tokenizer_langs needs a local `tokenizer` and at least one language"]
        return []

