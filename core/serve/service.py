"""What the server does with a request, without the web: one concept pipeline kept in memory
for the server's life (the very ``ConceptPipeline`` ``lcm run`` summarises with), requests run
one at a time through it, the page's options laid over the pipeline's for that request only."""
from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from lcm.components import ComponentSpec
from lcm.errors import InputFileError, UserError
from lcm.pipeline.options import PipelineOptions, StopConfig
from lcm.pipeline.pipeline import ConceptPipeline
from lcm.pipeline.selector import decoder_menu
from lcm.pipeline.sources import SourceDocument, check_input_file
from lcm.serve.progress import StageHistory, Tracker
from lcm.serve.requests import CancellableTerminal, checked_text, with_duration_limit
from lcm.ui import using

if TYPE_CHECKING:
    from lcm.registry import Registry

MAX_SUMMARY_LENGTH = 12
"""The page's summary-length slider ends here (a summary, not a rewrite)."""
GUIDANCE = "diffusion.guidance_scale"


@dataclass(frozen=True)
class Options:
    """What a user may change per request (the page's controls)."""

    summary_length: int
    end_rule: bool
    decoder: str
    """A label among ``Service.decoders``."""
    guidance_scale: Optional[float] = None
    """None where the model's head has no classifier-free guidance."""


@dataclass
class Answer:
    """A request's result: the task's record, the concepts to draw, how long it took."""

    record: dict[str, Any]
    source_vectors: Any
    summary_concepts: Any
    seconds: float


class Service:
    """One pipeline in memory, and one worker thread that runs every request in turn (``submit``):
    the page's queue feeds it one request at a time, and a single thread also keeps the memory
    a request frees for the next (a thread per request would grow a malloc arena per thread)."""

    def __init__(self, pipeline: ConceptPipeline):
        self.pipeline = pipeline
        pipeline.source_cap(pipeline.options)  # a bad length stops the server at start
        loaded = pipeline.loaded(pipeline.options.sampling)
        self.decoders = decoder_menu(pipeline.decoder, pipeline.registry, loaded.space,
                                     loaded.model.head.trained_through())
        for spec in self.decoders.values():
            pipeline.check(spec)  # once, here, not per request
        self.guidance = _guidance_default(pipeline)
        self.history = StageHistory()
        self.terminal = CancellableTerminal()  # the requests' bars, read by the page's progress
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lcm-summarize")

    @classmethod
    def from_recipe(cls, recipe: Any, registry: "Registry",
                    max_duration_s: Optional[float] = None) -> "Service":
        """The service of a resolved summarize recipe, its pipeline loaded once;
        ``max_duration_s``: laid over the encoder's own ``max_duration_s`` where it has none."""
        recipe = dataclasses.replace(recipe, encoder=with_duration_limit(recipe.encoder,
                                                                         max_duration_s))
        return cls(ConceptPipeline.from_summarize_recipe(recipe, registry))

    @property
    def takes_audio(self) -> bool:
        return self.pipeline.reads_recordings

    def defaults(self) -> Options:
        options = self.pipeline.options
        return Options(options.max_concepts, options.stop.end_sentence is not None,
                       next(iter(self.decoders)), self.guidance)

    def tracker(self, audio: bool) -> Tracker:
        return Tracker(self.history, "segmenting" if audio else "encoding", self.terminal)

    def submit(self, audio_path: Optional[str], text: str, options: Options,
               tracker: Tracker) -> "Future[Answer]":
        """Queue a request on the worker: the recording at ``audio_path`` if given, else ``text``."""
        if audio_path:
            return self._worker.submit(self.summarize_recording, audio_path, options, tracker)
        return self._worker.submit(self.summarize_text, text, options, tracker)

    def summarize_recording(self, path: str, options: Options, tracker: Tracker) -> Answer:
        """The recording at ``path`` summarised; a user's error is a ``UserError``."""
        if not self.takes_audio:
            raise UserError(f"this server's encoder ({self.pipeline.encoder.name}) reads text, "
                            f"not recordings: paste text instead")
        source = check_input_file(path)
        return self._run(lambda: self.pipeline.read_recording(source, self.terminal), options,
                         tracker)

    def summarize_text(self, text: str, options: Options, tracker: Tracker) -> Answer:
        text = checked_text(text)
        return self._run(lambda: self.pipeline.read_text(text, "pasted text", self.terminal),
                         options, tracker)

    def _run(self, read: Callable[[], SourceDocument], options: Options,
             tracker: Tracker) -> Answer:
        laid, decoder = self.request_options(options)
        started = time.perf_counter()
        self.terminal.begin(tracker)
        with using(self.terminal):  # plugins' bars (lcm.ui.current) open on it too
            doc = read()
            summary = self.pipeline.summarise(doc, laid, decoder, tracker.stage)
        tracker.finish()
        return Answer(summary.record, doc.vectors, summary.concepts, time.perf_counter() - started)

    def request_options(self, options: Options) -> tuple[PipelineOptions, ComponentSpec]:
        """The pipeline's options with the request's laid over them, and its decoder."""
        if options.decoder not in self.decoders:
            raise UserError(f"unknown decoder {options.decoder!r}; choose one of "
                            f"{', '.join(self.decoders)}")
        if not 1 <= options.summary_length <= MAX_SUMMARY_LENGTH:
            raise UserError(f"summary length must be 1 to {MAX_SUMMARY_LENGTH} sentences")
        base = self.pipeline.options
        end = (base.stop.end_sentence or StopConfig().end_sentence) if options.end_rule else None
        sampling = base.sampling
        if options.guidance_scale is not None and self.guidance is not None \
                and options.guidance_scale != self.guidance:
            diffusion = {**sampling.get("diffusion", {}), "guidance_scale": float(options.guidance_scale)}
            sampling = {**sampling, "diffusion": diffusion}
        laid = dataclasses.replace(base, max_concepts=int(options.summary_length),
                                   stop=dataclasses.replace(base.stop, end_sentence=end),
                                   sampling=sampling)
        return laid, self.decoders[options.decoder]


def user_message(exc: UserError) -> str:
    """A user's error in one line, naming an upload by its file name, not its temporary path."""
    if isinstance(exc, InputFileError):
        return f"{Path(str(exc.path)).name}: {exc.reason}"
    return " ".join(str(exc).split())


def _guidance_default(pipeline: ConceptPipeline) -> Optional[float]:
    """The guidance scale the model samples with, where its head has one."""
    head = pipeline.loaded(pipeline.options.sampling).meta["head"]
    cls = pipeline.registry.get("head", str(head.get("name"))).cls
    if GUIDANCE not in getattr(cls, "sampling_options", ()):
        return None
    override = pipeline.options.sampling.get("diffusion", {}).get("guidance_scale")
    return float(override if override is not None else head.get("diffusion", {}).get("guidance_scale", 1.0))
