"""Decoder ``learned``: writes new sentences with a model trained by ``train_decoder``.

Decoding is beam search or sampling, batched. With ``candidates > 1`` and an ``encoder`` of the
space, it decodes several sentences per concept, re-encodes them and keeps the one closest to
the concept (round-trip reranking). As a hybrid, the nearest sentence of its ``retrieval``
decoder (a bank, or the observed input documents) joins the pool, so the result is never
farther from the concept than retrieval's, and each output says whether it was generated or
retrieved.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from lcm.errors import ConceptSpaceMismatchError, UserError
from lcm.fields import ComponentSection, bounded, choice, component, path
from lcm.interfaces import ConceptSpace, DecodedSentence, Decoder
from lcm.pipeline.selector import GENERATED, RETRIEVED, rerank
from lcm.plugins.learned.model import load_model
from lcm.spaces import read_space

STRATEGIES = ("beam", "sample")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class LearnedConfig:
    model: str = path(must_exist=True, space_source=True,
                      help="model folder written by the train_decoder task")
    strategy: str = choice("sample", STRATEGIES, help=(
        "how the candidates for reranking are drawn: sample (nucleus sampling at `temperature`: "
        "diverse candidates, measured best) or beam (the best beams); a single candidate is "
        "always beam search's best"))
    candidates: int = bounded(8, ge=1, help=(
        "sentences decoded per concept; more than one needs `encoder` to choose among them"))
    beam_size: int = bounded(4, ge=1, help="beams of beam search (at least `candidates` are kept)")
    top_p: float = bounded(0.9, gt=0.0, le=1.0, help="nucleus of sampling")
    temperature: float = bounded(0.7, gt=0.0, help="temperature of sampling")
    no_repeat_ngram: int = bounded(3, ge=0, help=(
        "never repeat an n-gram of this size within a sentence (0: allow)"))
    seed: int = 0
    """Seed of sampling (decoding is reproducible)."""
    encoder: Optional[ComponentSection] = component("encoder", help=(
        "an encoder of the decoder's space, to re-encode candidates and keep the closest "
        "(round-trip reranking); null: keep the first candidate"))
    hybrid: bool = False
    """Add the ``retrieval`` decoder's nearest sentence to the candidates; needs ``encoder``."""
    retrieval: ComponentSection = component("decoder", default="retrieval", help=(
        "the hybrid's decoder that looks sentences up, with its own options (its `bank`, what "
        "it does with the `observed` input documents)"))
    batch_sentences: int = bounded(256, ge=1, help=(
        "sentences written at once, samples or beams included: each call decodes "
        "batch_sentences // (samples or beams per concept) concepts (at least one); larger "
        "batches amortise each step's fixed cost, memory grows with them"))
    device: str = "cpu"
    precision: str = choice("auto", PRECISIONS, help=(
        "matrix products of decoding and of re-encoding the candidates for reranking: bf16 "
        "(torch.autocast; weights stay fp32), fp32, or auto: bf16 on a GPU and on CPUs with "
        "native bfloat16 (AVX512-BF16, AMX), else fp32"))

    def problems(self) -> list[str]:
        if self.hybrid and self.encoder is None:
            return ["hybrid needs `encoder`, to compare generated and retrieved candidates"]
        return []


class LearnedDecoder(Decoder):
    name = "learned"
    description = "generative decoder trained by lcm (train_decoder); rerank and hybrid options"
    modalities = ("text",)
    Config = LearnedConfig

    def __init__(self, config: LearnedConfig | None = None, encoder: Any = None,
                 retrieval: Any = None):
        """``encoder``, ``retrieval``: built sub-components to use instead of building them from
        the options (e.g. ones already loaded elsewhere in the process)."""
        super().__init__(config)
        self._model: Any = None  # weights load on the first decode
        self._truecaser: Any = None
        self._encoder = encoder
        self._retrieval: Any = retrieval
        if self.config.hybrid and retrieval is None:
            self._retrieval = self.config.retrieval.create()
            theirs = self._retrieval.concept_space(self._retrieval.config)
            if theirs is not None and theirs != self._space():
                raise ConceptSpaceMismatchError(f"decoder learned works in {self._space()}, but "
                                                f"its retrieval decoder in {theirs}")

    @classmethod
    def concept_space(cls, config: LearnedConfig) -> ConceptSpace | None:
        return read_space(config.model) if config.model else None

    def _space(self) -> ConceptSpace:
        space = self.concept_space(self.config)
        if space is None:
            raise UserError(f"decoder learned: {self.config.model} records no concept space")
        return space

    @property
    def encoder(self) -> Any:
        """The reranking encoder (built on first use from the ``encoder`` section)."""
        if self._encoder is None and self.config.encoder is not None:
            self._encoder = self.config.encoder.create()
        return self._encoder

    def _load(self) -> None:
        if self._model is None:
            self._model, self._truecaser = load_model(self.config.model, self.config.device)

    def token_nll(self, vectors, sentences: Sequence[str]):
        """Teacher-forced token NLL through the frozen model (``TokenLikelihood``)."""
        self._load()
        model = self._model
        if next(model.parameters()).requires_grad:  # frozen once: a head learns through it
            model.requires_grad_(False)
        model.to(vectors.device)
        tokens = model.tokenize(sentences)
        return model.token_nll(vectors, tokens["input_ids"].to(vectors.device),
                               tokens["attention_mask"].to(vectors.device))

    def weights_identity(self) -> dict[str, str]:
        return {"decoder": self.name, "model": str(Path(self.config.model).resolve())}

    def observe(self, sentences: Sequence[str], vectors) -> None:
        if self._retrieval is not None:
            self._retrieval.observe(sentences, vectors)

    def forget(self) -> bool:
        return self._retrieval is None or self._retrieval.forget()

    def decode(self, vectors, language: str | None = None) -> list[str]:
        return [d.text for d in self.decode_traced(vectors, language)]

    def decode_traced(self, vectors, language: str | None = None) -> list[DecodedSentence]:
        """The chosen sentence per row, with its origin and round-trip cosine."""
        return self._batched(vectors, self._decode_batch)

    def _batched(self, vectors, decode_batch: Any) -> list[Any]:
        """``decode_batch`` over ``vectors`` in batches, once their dimension is the space's
        (the weights load here)."""
        import torch  # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast

        vectors = torch.as_tensor(vectors).float()
        space = self._space()
        if vectors.shape[-1] != space.dim:
            raise ConceptSpaceMismatchError(f"decoder learned: vectors of dim {vectors.shape[-1]} "
                                            f"for a decoder of {space}")
        self._load()
        per_call = max(1, self.config.batch_sentences // self._sentences_per_concept())
        results: list[Any] = []
        for start in range(0, len(vectors), per_call):
            results += decode_batch(vectors[start:start + per_call])
        return results

    def _candidates(self) -> int:
        """Sentences written per concept: several only when an encoder can choose among them."""
        return self.config.candidates if self.encoder is not None else 1

    def _sampling(self) -> bool:
        return self.config.strategy == "sample" and self._candidates() > 1

    def _sentences_per_concept(self) -> int:
        """Sequences a concept occupies while decoding: its samples, or its beams."""
        if self._sampling():
            return self._candidates()
        return max(self.config.beam_size, self._candidates())

    def _bf16(self) -> bool:
        if self.config.precision != "auto":
            return self.config.precision == "bf16"
        import torch  # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast

        if self.config.device.startswith("cuda"):
            return torch.cuda.is_bf16_supported()
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()

    def candidates(self, vectors, language: str | None = None) -> list[list[tuple[str, str]]]:
        """Every sampled sentence per row (and, hybrid, the retrieved one): the pipeline's
        selector chooses among them under a summary's rules."""
        return self._batched(vectors, self._pools)

    def _pools(self, vectors) -> list[list[tuple[str, str]]]:
        """The candidates of a batch of concepts: generated, then the retrieved one (hybrid)."""
        config = self.config
        count = self._candidates()
        pools = [[(self._truecaser.apply(t), GENERATED) for t in row]
                 for row in self._model.generate(
                     vectors.to(config.device), candidates=count, beam_size=config.beam_size,
                     sample=self._sampling(), top_p=config.top_p,
                     temperature=config.temperature, no_repeat_ngram=config.no_repeat_ngram,
                     seed=config.seed, bf16=self._bf16())]
        if self._retrieval is not None:
            for pool, (text, _) in zip(pools, self._retrieval.nearest(vectors)):
                pool.append((text, RETRIEVED))
        return pools

    def _decode_batch(self, vectors) -> list[DecodedSentence]:
        pools = self._pools(vectors)
        if self.encoder is None:
            return [DecodedSentence(pool[0][0], pool[0][1], None) for pool in pools]
        import torch  # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast

        # re-encoding is a third of reranking's time; MiniLM's bf16 vectors are at cosine
        # 0.99999 to its fp32 ones, so the candidates are ranked alike
        with torch.autocast(torch.device(self.config.device).type, dtype=torch.bfloat16,
                            enabled=self._bf16()):
            return rerank(self.encoder, pools, vectors)
