"""Encoder ``sonar_text``: SONAR's text encoder (200 languages, 1024-d), via fairseq2 cards.

Sentences are tokenised, sorted by token length and cut into batches by count and token
budget, so a forward pass spends little on padding; vectors come back in input order.
Sentences longer than the model (or ``max_seq_len``) are truncated and counted in a log line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from lcm.errors import UserError
from lcm.fields import bounded
from lcm.hookspecs import hookimpl
from lcm.interfaces import ConceptSpace, Encoder
from lcm.plugins.sonar import assets
from lcm.plugins.sonar.batching import length_sorted_batches, restore_order
from lcm.torch_options import torch_device, torch_dtype
from lcm.ui import current, progress

from ..sonar.languages import language_problem
from ..sonar.options import SPACE_NAME, SonarModelOptions


@dataclass
class SonarTextEncoderConfig(SonarModelOptions):
    card: str = "text_sonar_basic_encoder"
    """fairseq2 asset card of the encoder (sonar-space ships it; fairseq2 downloads it)."""
    source_lang: str = "eng_Latn"
    """NLLB code of the input language (eng_Latn, fra_Latn, zho_Hans, ...)."""
    max_tokens: int = bounded(16384, ge=1)
    """Token budget of one forward pass: rows × longest sentence (in tokens)."""
    max_seq_len: Optional[int] = bounded(None, ge=2)
    """Truncate sentences to this many tokens (default: what the model supports, 512)."""

    def problems(self) -> list[str]:
        problem = language_problem(self.source_lang, "source_lang")
        return super().problems() + ([problem] if problem else [])


class SonarTextEncoder(Encoder):
    name = "sonar_text"
    description = "SONAR text encoder (fairseq2 card, local checkpoint or own cards)"
    modalities = ("text",)
    Config = SonarTextEncoderConfig

    def __init__(self, config: SonarTextEncoderConfig | None = None):
        super().__init__(config)
        self._model: Any = None  # loaded on the first encode: listing plugins stays instant
        self._tokenizer: Any = None
        self._token_encoder: Any = None

    @classmethod
    def concept_space(cls, config: SonarTextEncoderConfig) -> ConceptSpace:
        return ConceptSpace(SPACE_NAME, config.dim)

    def load(self) -> "SonarTextEncoder":
        """Load weights and tokenizer now (otherwise the first ``encode`` does)."""
        if self._model is None:
            # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
            from sonar.models.sonar_text import get_sonar_text_encoder_hub

            cfg = self.config
            card = assets.resolve_card(cfg, needs_tokenizer=True)
            device = torch_device(cfg.device)
            tokenizer = assets.load_tokenizer(card)
            model = assets.load_model(get_sonar_text_encoder_hub, card, device,
                                      torch_dtype(cfg.dtype), lambda c: c.embedding_dim or c.model_dim,
                                      cfg, tokenizer)
            self.attach(model, tokenizer, device)
        return self

    def attach(self, model: Any, tokenizer: Any, device: Any) -> "SonarTextEncoder":
        """Use an already loaded SONAR encoder and NLLB tokenizer (shared, or built in code)."""
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from fairseq2.error import NotSupportedError

        try:
            token_encoder = tokenizer.create_encoder(lang=self.config.source_lang, mode="source")
        except NotSupportedError:
            raise UserError(f"source_lang: the tokenizer does not know "
                            f"{self.config.source_lang!r}") from None
        self._model, self._tokenizer, self._token_encoder = model.eval(), tokenizer, token_encoder
        self._device = device
        return self

    @property
    def model_max_len(self) -> int:
        """Longest token sequence the model's position encoder supports."""
        self.load()
        frontend = self._model.encoder_frontend
        encoder = frontend.pos_encoder if frontend.pos_encoder is not None \
            else self._model.encoder.layers[0].self_attn.pos_encoder
        return int(encoder.max_seq_len)

    def encode(self, inputs: Sequence[str]) -> Any:
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from fairseq2.nn.utils.padding import pad_seqs

        sentences = _checked_sentences(inputs)
        if not sentences:
            return torch.empty(0, self.config.dim)
        self.load()
        max_len = self._max_len()
        tokens = [self._token_encoder(s) for s in sentences]
        truncated = sum(len(t) > max_len for t in tokens)
        if truncated:
            current().note(f"sonar_text: {truncated} of {len(tokens)} sentence(s) cut to "
                           f"{max_len} tokens", key="sentences cut to the encoder's length")
            tokens = [t[:max_len] for t in tokens]
        batches = length_sorted_batches([len(t) for t in tokens], self.config.batch_size,
                                        self.config.max_tokens)
        pad_idx = self._tokenizer.vocab_info.pad_idx
        outputs = []
        with torch.inference_mode(), progress("sonar_text", len(tokens), "sentences",
                                              shown=len(batches) >= 20) as bar:
            for batch in batches:
                seqs, layout = pad_seqs([tokens[i] for i in batch], pad_value=pad_idx,
                                        device=self._device)
                outputs.append(self._model(seqs, layout).sentence_embeddings.float().cpu())
                bar.update(len(batch))
        return restore_order(batches, outputs)

    def _max_len(self) -> int:
        model_max = self.model_max_len
        wanted = self.config.max_seq_len
        if wanted is not None and wanted > model_max:
            raise UserError(f"max_seq_len {wanted} exceeds what the model supports ({model_max})")
        return wanted or model_max


def _checked_sentences(inputs: Sequence[str]) -> list[str]:
    """The inputs as a list of non-empty strings; anything else is the caller's mistake."""
    sentences = list(inputs)
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise UserError(f"sonar_text encodes strings; input {i} is a {type(s).__name__}")
        if not s.strip():
            raise UserError(f"sonar_text: input {i} is an empty sentence; a vector of nothing "
                            f"would enter the data unnoticed, so remove empty sentences first")
    return sentences


@hookimpl
def register_encoders(register) -> None:
    register(SonarTextEncoder)
