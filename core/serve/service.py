"""What the server does with a request, without the web: one summariser kept in memory for the
server's life, requests run one at a time through the very ``Summarizer`` ``lcm run`` uses, the
page's options laid over the recipe for that request only."""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lcm.errors import InputFileError, UserError
from lcm.serve.progress import StageHistory, Tracker
from lcm.serve.requests import CancellableTerminal, checked_text, with_duration_limit
from lcm.tasks.continuation import StopConfig
from lcm.tasks.summarize import SummarizeConfig, Summarizer, check_input_file
from lcm.ui import using

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
    """One model in memory, and one worker thread that runs every request in turn (``submit``):
    the page's queue feeds it one request at a time, and a single thread also keeps the memory
    a request frees for the next (a thread per request would grow a malloc arena per thread)."""

    def __init__(self, recipe: SummarizeConfig, registry: Any,
                 max_duration_s: Optional[float] = None):
        """``max_duration_s``: laid over the encoder's own ``max_duration_s`` where it has none."""
        recipe = dataclasses.replace(recipe, encoder=with_duration_limit(recipe.encoder,
                                                                         max_duration_s))
        self.recipe = recipe
        self.summarizer = Summarizer(recipe, registry)
        self.summarizer.settings(recipe)  # a bad decoder or length stops the server at start
        self.decoders = decoder_choices(recipe, registry, self.summarizer.model(recipe.sampling))
        self.guidance = _guidance_default(recipe, registry, self.summarizer.model(recipe.sampling))
        self.history = StageHistory()
        self.terminal = CancellableTerminal()  # the requests' bars, read by the page's progress
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lcm-summarize")

    @property
    def takes_audio(self) -> bool:
        return self.summarizer.reads_recordings

    def defaults(self) -> Options:
        return Options(self.recipe.max_summary_concepts, self.recipe.stop.end_sentence is not None,
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
            raise UserError(f"this server's encoder ({self.recipe.encoder.name}) reads text, "
                            f"not recordings: paste text instead")
        source = check_input_file(path)
        return self._run(lambda recipe: next(self.summarizer.documents(recipe, source, Counter(),
                                                                       self.terminal)),
                         options, tracker)

    def summarize_text(self, text: str, options: Options, tracker: Tracker) -> Answer:
        text = checked_text(text)
        return self._run(lambda recipe: self.summarizer.text_document(recipe, text, "pasted text",
                                                                      self.terminal),
                         options, tracker)

    def _run(self, read: Any, options: Options, tracker: Tracker) -> Answer:
        recipe = self.request_recipe(options)
        started = time.perf_counter()
        self.terminal.begin(tracker)
        with using(self.terminal):  # plugins' bars (lcm.ui.current) open on it too
            doc = read(recipe)
            summary = self.summarizer.summarize(doc, recipe, tracker.stage)
        tracker.finish()
        return Answer(summary.record, doc.vectors, summary.concepts, time.perf_counter() - started)

    def request_recipe(self, options: Options) -> SummarizeConfig:
        """The recipe with the request's options laid over it."""
        if options.decoder not in self.decoders:
            raise UserError(f"unknown decoder {options.decoder!r}; choose one of "
                            f"{', '.join(self.decoders)}")
        if not 1 <= options.summary_length <= MAX_SUMMARY_LENGTH:
            raise UserError(f"summary length must be 1 to {MAX_SUMMARY_LENGTH} sentences")
        base = self.recipe.stop
        end = (base.end_sentence or StopConfig().end_sentence) if options.end_rule else None
        sampling = self.recipe.sampling
        if options.guidance_scale is not None and self.guidance is not None \
                and options.guidance_scale != self.guidance:
            diffusion = {**sampling.get("diffusion", {}), "guidance_scale": float(options.guidance_scale)}
            sampling = {**sampling, "diffusion": diffusion}
        return dataclasses.replace(self.recipe, max_summary_concepts=int(options.summary_length),
                                   stop=dataclasses.replace(base, end_sentence=end),
                                   decoder=self.decoders[options.decoder], sampling=sampling,
                                   show=False)


def user_message(exc: UserError) -> str:
    """A user's error in one line, naming an upload by its file name, not its temporary path."""
    if isinstance(exc, InputFileError):
        return f"{Path(str(exc.path)).name}: {exc.reason}"
    return " ".join(str(exc).split())


def decoder_choices(recipe: SummarizeConfig, registry: Any, loaded: Any) -> dict[str, Any]:
    """The decoders the page offers, by label: the recipe's first; where its options have a
    ``hybrid`` switch, the other setting; and nearest-neighbour retrieval from the source,
    unless the model's head learned through a decoder (it then decodes with that one only)."""
    from lcm.components import resolve

    space = loaded.space
    own = recipe.decoder
    choices = {_label(own): own}
    if isinstance(getattr(own.options, "hybrid", None), bool):
        flipped = dataclasses.replace(own.options, hybrid=not own.options.hybrid)
        other = type(own)(own.cls, flipped)
        choices[_label(other)] = other
    if own.name != "retrieval" and "retrieval" in registry.names("decoder") \
            and loaded.model.head.trained_through() is None:
        retrieval = resolve(registry, "decoder", {"name": "retrieval", "space": space.name,
                                                  "dim": space.dim})
        choices[_label(retrieval)] = retrieval
    return choices


def _label(spec: Any) -> str:
    hybrid = getattr(spec.options, "hybrid", None)
    if spec.name == "retrieval":
        return "retrieval (nearest source sentence)"
    if hybrid is None:
        return spec.name
    return f"{spec.name} ({'generated or retrieved, closer wins' if hybrid else 'generated only'})"


def _guidance_default(recipe: SummarizeConfig, registry: Any, loaded: Any) -> Optional[float]:
    """The guidance scale the model samples with, where its head has one."""
    head = loaded.meta["head"]
    cls = registry.get("head", str(head.get("name"))).cls
    if GUIDANCE not in getattr(cls, "sampling_options", ()):
        return None
    override = recipe.sampling.get("diffusion", {}).get("guidance_scale")
    return float(override if override is not None else head.get("diffusion", {}).get("guidance_scale", 1.0))
