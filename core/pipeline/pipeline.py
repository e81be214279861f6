"""``ConceptPipeline``: encoder, model (with its normaliser), decoder and selector, built once.

``lcm run`` (generate, summarize) and ``lcm serve`` build one and call it per document or per
request with ``PipelineOptions`` (a request lays its own over the pipeline's). Everything here
is in the encoder's own space: the model's normaliser maps concepts in and out inside the
generation loop, so no caller normalises by hand. The space and decoder checks run once, at
build time (``check`` for any further decoder a server offers).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch
import torch.nn.functional as F

from lcm.data.instruction import InstructionFormat, build_prompt
from lcm.errors import UserError
from lcm.generate.loop import StopRules, generate
from lcm.model.checkpoint import load_checkpoint
from lcm.pipeline import selector
from lcm.pipeline.checks import check_decoder, check_spaces
from lcm.pipeline.long_input import plan_parts, source_cap
from lcm.pipeline.options import PipelineOptions, summary_options
from lcm.pipeline.salience import SalienceModel, salience_features
from lcm.pipeline.support import SourceSupport
from lcm.pipeline.sources import (
    ENCODE_BATCH,
    NO_SENTENCES,
    SourceDocument,
    encode_sentences,
    read_recording,
    reads_recordings,
)
from lcm.ui import Terminal, current

if TYPE_CHECKING:
    from torch import Tensor

    from lcm.components import ComponentSpec
    from lcm.generate.loop import Continuation, StopRules
    from lcm.interfaces import DecodedSentence, Decoder, Encoder
    from lcm.model.checkpoint import LoadedModel
    from lcm.registry import Registry


def _quiet(stage: str) -> None:
    """The default stage callback: ``lcm run`` shows progress bars instead."""


@dataclass
class SourceSummary:
    """One source's summary: the JSON-ready record, and the generated concepts behind it."""

    record: dict[str, Any]
    concepts: "Tensor"  # (M, D) float, the encoder's space


class ConceptPipeline:
    """A trained model with the encoders and decoder around it, loaded once.

    ``encoder`` reads the input; ``text_encoder`` (default: ``encoder`` where it takes text)
    encodes the framing sentences (the end sentence, the model's source suffix); ``decoder`` is
    built once per spec (its weights and bank load once) and forgets what it observed before
    each source, so what it observes stays that source's. ``segment`` splits
    a pasted text into sentences (a recipe's ``DocumentInput.sentences``).
    """

    def __init__(self, model: str, registry: "Registry", encoder: "ComponentSpec",
                 decoder: "ComponentSpec", options: PipelineOptions, *,
                 text_encoder: "Optional[ComponentSpec]" = None, device: str = "cpu",
                 segment: Optional[Callable[[str], list[str]]] = None,
                 salience: Optional[str] = None):
        self.registry, self.model_dir, self.device = registry, model, device
        self.options, self.decoder = options, decoder
        self.segment = segment
        self.salience = SalienceModel.load(salience) if salience else None
        self._loaded: "Optional[LoadedModel]" = None
        self._sampling: Optional[dict[str, Any]] = None
        self._end_concepts: dict[str, "Tensor"] = {}
        self._checked: set[int] = set()
        self._decoders: dict[int, "Decoder"] = {}
        loaded = self.loaded(options.sampling)
        self.encoder: "Encoder" = encoder.create()
        self.reads_recordings = reads_recordings(self.encoder)
        self.framing = _framing_encoder(text_encoder, self.encoder, options.stop.end_sentence)
        check_spaces(loaded.space, self.encoder, self.framing)
        self.check(decoder)

    @classmethod
    def from_summarize_recipe(cls, recipe: Any, registry: "Registry") -> "ConceptPipeline":
        """The pipeline of a summarize recipe (its model, encoders, decoder and options)."""
        return cls(recipe.model, registry, recipe.encoder, recipe.decoder, summary_options(recipe),
                   text_encoder=recipe.text_encoder, device=recipe.device, segment=recipe.sentences,
                   salience=recipe.salience)

    # ------------------------------------------------------------------ set-up
    def loaded(self, sampling: dict[str, Any]) -> "LoadedModel":
        """The checkpoint loaded with ``sampling``; reloaded (replacing the previous one, so one
        model stays in memory) only when the sampling options change."""
        if self._loaded is None or sampling != self._sampling:
            self._loaded = None  # the old copy goes before the new one loads
            self._loaded = load_checkpoint(self.model_dir, self.registry, self.device, sampling)
            self._sampling = sampling
        return self._loaded

    def check(self, decoder: "ComponentSpec") -> None:
        """Refuse ``decoder`` when it works in another space or the head learned through
        another one; each spec is checked once."""
        if id(decoder) in self._checked:
            return
        loaded = self.loaded(self.options.sampling)
        created = self._decoders[id(decoder)] = decoder.create()
        check_spaces(loaded.space, created)
        check_decoder(loaded.model.head, created)
        self._checked.add(id(decoder))

    @property
    def text_encoder(self) -> "Encoder":
        """What encodes text sources: ``encoder``, or the framing one where it takes speech."""
        return self.encoder if "text" in self.encoder.modalities else self.framing

    @cached_property
    def suffix(self) -> "Optional[Tensor]":
        """The concept of the separator the model was fine-tuned with after a source, if any."""
        meta = self.loaded(self.options.sampling).meta
        instruction = InstructionFormat.from_checkpoint(meta.get("extra") or {})
        if instruction is None or not instruction.source_suffix:
            return None
        return self.framing.encode([instruction.source_suffix])[0].float()

    def stop_rules(self, options: PipelineOptions) -> "StopRules":
        """The loop's rules for ``options``; each end sentence is encoded once."""
        stop = options.stop
        rules = StopRules(options.max_concepts, None, stop.end_threshold, stop.repetition_threshold)
        if stop.end_sentence:
            if stop.end_sentence not in self._end_concepts:
                self._end_concepts[stop.end_sentence] = \
                    self.framing.encode([stop.end_sentence])[0].float()
            rules.end_concept = self._end_concepts[stop.end_sentence]
        return rules

    def source_cap(self, options: PipelineOptions) -> int:
        """Most source concepts one summary prompt holds (refuses a length that leaves none)."""
        max_seq_len = self.loaded(options.sampling).model.config.max_seq_len
        return source_cap(max_seq_len, options.max_concepts, 0 if self.suffix is None else 1,
                          options.max_source_concepts)

    # ------------------------------------------------------------------ the four steps
    def encode(self, sentences: list[str], bar: Any = None,
               batch_size: Optional[int] = ENCODE_BATCH) -> "Tensor":
        """``sentences`` as concepts of the text encoder (float, the encoder's space)."""
        return encode_sentences(self.text_encoder, sentences, bar, batch_size)

    def continuations(self, prompts: list["Tensor"],
                      options: Optional[PipelineOptions] = None) -> list["Continuation"]:
        """Each prompt (L_i, D) continued together, as ``options`` say."""
        options = options or self.options
        loaded = self.loaded(options.sampling)
        return generate(loaded.model, prompts, self.stop_rules(options),
                        normalizer=loaded.normalizer, seed=options.seed,
                        padding_side=options.padding_side)

    def decode(self, concepts: "Tensor", observed: tuple[list[str], "Tensor"],
               options: Optional[PipelineOptions] = None,
               decoder: "Optional[ComponentSpec]" = None) -> list["DecodedSentence"]:
        """``concepts`` as sentences, by a fresh decoder that saw only ``observed`` (the
        source's texts and vectors: a retrieval decoder's bank never holds another's)."""
        options = options or self.options
        built = self._decoder(decoder or self.decoder)
        built.observe(*observed)
        return built.decode_traced(concepts, options.language) if len(concepts) else []

    def choose(self, concepts: "Tensor", doc: SourceDocument, options: PipelineOptions,
               decoder: "Optional[ComponentSpec]" = None) -> list["selector.Choice"]:
        """A summary's sentences under its rules: the decoder's candidates for each concept
        (it saw only ``doc``), re-encoded where they are not source segments, chosen by the
        selector against ``doc``'s support."""
        if not len(concepts):
            return []
        built = self._decoder(decoder or self.decoder)
        built.observe(doc.texts, doc.vectors)
        pools = built.candidates(concepts, options.language)
        support = SourceSupport(doc.texts, doc.vectors, options.support_cosine)
        vectors = support.vectors_of([text for pool in pools for text, _ in pool],
                                     self.text_encoder.encode)
        return selector.choose(concepts, pools, vectors, support, self.prior(doc, options))

    def prior(self, doc: SourceDocument, options: PipelineOptions) -> "Optional[Tensor]":
        """The weighted salience of each of ``doc``'s segments, if this pipeline has a prior."""
        if self.salience is None or not options.salience_weight:
            return None
        title = None
        if doc.title:
            title = (doc.title, self.text_encoder.encode([doc.title])[0].float().numpy())
        features = salience_features(doc.texts, doc.vectors.float().numpy(), title)
        return options.salience_weight * torch.from_numpy(self.salience.scores(features)).float()

    def _decoder(self, spec: "ComponentSpec") -> "Decoder":
        """The decoder of ``spec`` (by identity: the recipe's, or one of a server's menu),
        built on first use and reused while it can forget what it observed (a fresh one per
        source otherwise)."""
        built = self._decoders.get(id(spec))
        if built is None or not built.forget():
            built = self._decoders[id(spec)] = spec.create()
        return built

    def summarise(self, doc: SourceDocument, options: Optional[PipelineOptions] = None,
                  decoder: "Optional[ComponentSpec]" = None,
                  stage: Callable[[str], None] = _quiet) -> SourceSummary:
        """Generate, decode and trace the summary of ``doc``; ``stage`` hears each step."""
        options = options or self.options
        cap = self.source_cap(options)
        parts = plan_parts(len(doc.texts), cap, options.long_input)
        _note_long_source(doc, parts, cap)
        prompts = [build_prompt(doc.vectors[p.start:p.stop], self.suffix) for p in parts]
        stage("generating")
        continuations = self.continuations(prompts, options)
        concepts = torch.cat([c.concepts for c in continuations])
        stage("decoding")
        choices = self.choose(concepts, doc, options, decoder)
        part_of = [i for i, c in enumerate(continuations) for _ in range(len(c.concepts))]
        similarity = (F.normalize(concepts.float(), dim=-1)
                      @ F.normalize(doc.vectors.float(), dim=-1).T) if len(concepts) else None
        summary = [{"text": choice.decoded.text, "source_index": choice.segment,
                    "similarity": round(float(similarity[row, choice.segment]), 4),
                    **doc.span(choice.segment), "part": part,
                    **selector.decoding_record(choice.decoded, choice)}
                   for row, (choice, part) in enumerate(zip(choices, part_of))]
        record = {"id": doc.id, "modality": doc.modality,
                  "segments": [{"index": i, "text": text, **doc.span(i)}
                               for i, text in enumerate(doc.texts)],
                  "summary": selector.in_order(summary, options.order),
                  "parts": [{"start": p.start, "stop": p.stop, "stop_reason": c.stop_reason}
                            for p, c in zip(parts, continuations)],
                  "left_out": len(doc.texts) - parts[-1].stop}
        return SourceSummary(record, concepts)

    # ------------------------------------------------------------------ reading sources
    def read_recording(self, source: Path, terminal: Terminal) -> SourceDocument:
        """One recording's utterances (needs an encoder that reads recordings)."""
        if not self.reads_recordings:
            raise UserError(f"encoder {self.encoder.name!r} reads text, not recordings")
        return read_recording(source, self.encoder, terminal)  # type: ignore[arg-type]

    def read_text(self, text: str, id: str, terminal: Terminal) -> SourceDocument:
        """``text`` as one source, segmented by ``segment`` and encoded."""
        if self.segment is None:
            raise ValueError("this pipeline was built without a segmenter")
        sentences = self.segment(text)
        if not sentences:
            raise UserError(f"{NO_SENTENCES} in the text given")
        with terminal.progress("encode", len(sentences), "sentences") as bar:
            return SourceDocument(id, sentences, self.encode(sentences, bar))


def _framing_encoder(text_encoder: "Optional[ComponentSpec]", encoder: "Encoder",
                     end_sentence: Optional[str]) -> "Encoder":
    """The encoder of the framing sentences: ``text_encoder``, else ``encoder`` if it takes text."""
    if text_encoder is not None:
        return text_encoder.create()
    if "text" in encoder.modalities:
        return encoder
    raise UserError(f"encoder {encoder.name!r} takes no text, but the end sentence "
                    f"{end_sentence!r} must be encoded: set text_encoder to a text "
                    f"encoder of the same space")


def _note_long_source(doc: SourceDocument, parts: list[Any], cap: int) -> None:
    """A terminal note when a source did not fit one prompt."""
    total = len(doc.texts)
    if len(parts) > 1:
        current().note(f"{doc.id}: {total} source concepts, more than {cap}: summarised in "
                       f"{len(parts)} parts", key="long source summarised in parts")
    elif parts[0].stop < total:
        current().note(f"{doc.id}: {total} source concepts, more than {cap}: the last "
                       f"{total - parts[0].stop} left out (long_input: truncate)",
                       key="long source truncated")
