"""Decoder ``sonar_text``: SONAR vectors back to text in any of its 200 languages.

Generation is sonar's own ``EmbeddingToTextModelPipeline`` (beam search, or sampling with a
top-p / top-k sampler) around the model and tokenizer loaded from the card.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from lcm.errors import UserError
from lcm.fields import bounded, choice
from lcm.hookspecs import hookimpl
from lcm.interfaces import ConceptSpace, Decoder
from lcm.plugins.sonar import assets
from lcm.torch_options import torch_device, torch_dtype

from ..sonar.languages import check_language, language_problem
from ..sonar.options import SPACE_NAME, SonarModelOptions

STRATEGIES = ("beam", "top_p", "top_k")


@dataclass
class SonarTextDecoderConfig(SonarModelOptions):
    card: str = "text_sonar_basic_decoder"
    """fairseq2 asset card of the decoder (sonar-space ships it; fairseq2 downloads it)."""
    target_lang: str = "eng_Latn"
    """NLLB code of the output language, unless ``decode`` is given one."""
    batch_size: int = bounded(16, ge=1)
    strategy: str = choice("beam", STRATEGIES, help="beam search, or sampling (top_p / top_k)")
    beam_size: int = bounded(5, ge=1)
    max_len: int = bounded(128, ge=1)
    """Most tokens generated per sentence."""
    top_p: float = bounded(0.9, gt=0, le=1)
    top_k: int = bounded(50, ge=1)
    temperature: Optional[float] = None
    """Sampling temperature (default: fairseq2's, 0.6 for sampling, 1.0 for beam search)."""
    seed: Optional[int] = None
    """Seed for sampling, for reproducible outputs."""

    def problems(self) -> list[str]:
        problem = language_problem(self.target_lang, "target_lang")
        return super().problems() + ([problem] if problem else [])


class SonarTextDecoder(Decoder):
    name = "sonar_text"
    description = "SONAR text decoder (vectors → text in 200 languages)"
    modalities = ("text",)
    Config = SonarTextDecoderConfig

    def __init__(self, config: SonarTextDecoderConfig | None = None):
        super().__init__(config)
        self._pipeline: Any = None  # loaded on the first decode: listing plugins stays instant

    @classmethod
    def concept_space(cls, config: SonarTextDecoderConfig) -> ConceptSpace:
        return ConceptSpace(SPACE_NAME, config.dim)

    def load(self) -> "SonarTextDecoder":
        if self._pipeline is None:
            # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
            from sonar.inference_pipelines.text import EmbeddingToTextModelPipeline
            from sonar.models.sonar_text import get_sonar_text_decoder_hub

            cfg = self.config
            card = assets.resolve_card(cfg, needs_tokenizer=True)
            device, dtype = torch_device(cfg.device), torch_dtype(cfg.dtype)
            self._tokenizer = assets.load_tokenizer(card)
            model = assets.load_model(get_sonar_text_decoder_hub, card, device, dtype,
                                      lambda c: c.input_dim or c.model_dim, cfg, self._tokenizer)
            self._pipeline = EmbeddingToTextModelPipeline(model, self._tokenizer, device=device)
            self._model, self._device, self._dtype = model, device, dtype
        return self

    def decode(self, vectors: Any, language: str | None = None) -> list[str]:
        language = check_language(language, "language") if language else self.config.target_lang
        if len(vectors) == 0:
            return []
        if vectors.dim() != 2 or vectors.shape[1] != self.config.dim:
            raise UserError(f"sonar_text decoder takes [N, {self.config.dim}] vectors, "
                            f"got {tuple(vectors.shape)}")
        self.load()
        if self.config.seed is not None:
            torch.manual_seed(self.config.seed)
        return self._pipeline.predict(vectors.to(self._device, self._dtype), target_lang=language,
                                      batch_size=self.config.batch_size, **self.generation_options())

    def token_nll(self, vectors: Any, sentences: Sequence[str]) -> tuple[Any, Any]:
        """Teacher-forced token NLL in ``target_lang`` through the frozen fairseq2 decoder
        (``TokenLikelihood``); the language tag the prompt forces is not scored."""
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from fairseq2.nn import BatchLayout

        self.load()
        model = self._model
        if next(model.parameters()).requires_grad:  # frozen once: a head learns through it
            model.requires_grad_(False)
        device = vectors.device
        model.to(device)
        encoder = self._tokenizer.create_encoder(task="translation", lang=self.config.target_lang,
                                                 mode="target", device=device)
        longest = min(self.config.max_len, model.max_target_seq_len)  # longer ones are cut
        rows = [encoder(sentence)[:longest + 1] for sentence in sentences]
        forced = len(encoder.prefix_indices) - 1  # targets the prompt fixes (the language tag)
        pad = self._tokenizer.vocab_info.pad_idx
        inputs = pad_sequence([row[:-1] for row in rows], batch_first=True, padding_value=pad)
        targets = pad_sequence([row[1:] for row in rows], batch_first=True, padding_value=-100)
        targets[:, :forced] = -100
        source = vectors[:, None].to(self._dtype)  # (N, 1, D): the concept is the whole source
        source_layout = BatchLayout.of(source)
        states = model.decode(inputs, BatchLayout.of(inputs, [len(row) - 1 for row in rows]),
                              model.encode(source, source_layout), source_layout)
        logits = model.project(states)  # (N, T, V)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), targets,
                                                ignore_index=-100, reduction="none")
        return nll.sum(1), (targets != -100).sum(1)

    def weights_identity(self) -> dict[str, str]:
        cfg = self.config
        return {"decoder": self.name,
                "model": str(Path(cfg.checkpoint).resolve()) if cfg.checkpoint else cfg.card}

    def generation_options(self) -> dict[str, Any]:
        """Keyword arguments for sonar's ``EmbeddingToTextModelPipeline.predict``."""
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from fairseq2.generation.sampling import TopKSampler, TopPSampler

        cfg = self.config
        # (a, b): at most a·source_len + b tokens; the source is the single vector.
        options: dict[str, Any] = {"max_gen_len": (0, cfg.max_len)}
        if cfg.temperature is not None:
            options["temperature"] = cfg.temperature
        if cfg.strategy == "beam":
            options["beam_size"] = cfg.beam_size
        else:
            options["sampler"] = TopPSampler(cfg.top_p) if cfg.strategy == "top_p" \
                else TopKSampler(cfg.top_k)
        return options


@hookimpl
def register_decoders(register) -> None:
    register(SonarTextDecoder)
