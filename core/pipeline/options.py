"""The pipeline's options: the recipe fields of the tasks that run it, and the typed options
one run (or one web request) of it uses.

A recipe stays flat (``stop:``, ``sampling:``, ``max_summary_concepts:`` at its top level); a
task's ``Config`` inherits ``ContinuationOptions`` (and ``SummaryOptions`` to summarise), and
``PipelineOptions`` is what the pipeline reads. ``lcm serve`` lays a request's options over the
pipeline's with ``dataclasses.replace``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

from lcm.fields import bounded, choice, path
from lcm.pipeline.long_input import LONG_INPUT_MODES
from lcm.pipeline.salience import DEFAULT_WEIGHT as DEFAULT_SALIENCE_WEIGHT
from lcm.pipeline.support import DEFAULT_MIN_COSINE

ORDERS = ("generation", "source")
PADDING_SIDES = ("left", "right")


@dataclass
class StopConfig:
    end_sentence: Optional[str] = "End of text."
    """Its encoding is the end concept; None disables this rule."""
    end_threshold: float = 0.9
    """Stop when a new concept's cosine to the end concept exceeds this."""
    repetition_threshold: Optional[float] = 0.9
    """Stop when a new concept's cosine to the previous one exceeds this; None disables."""


@dataclass(kw_only=True)
class ContinuationOptions:
    """Recipe fields of the tasks that continue documents with a trained model."""

    stop: StopConfig = field(default_factory=StopConfig)
    sampling: dict[str, Any] = field(default_factory=dict)
    """Head options of the model to change for this run, among those its head lets change
    (e.g. ``{diffusion: {inference_steps: 10}}``); the rest are the checkpoint's own."""
    seed: int = 0
    """Seeds heads that sample, so a run is reproducible."""
    device: str = "cpu"
    language: Optional[str] = None
    """Output language for decoders of multilingual spaces (None: the decoder's default)."""
    show: bool = True
    """Print each document's result as it is made."""


@dataclass(kw_only=True)
class SummaryOptions:
    """Recipe fields of a summary's length, order and long sources."""

    max_summary_concepts: int = 8
    """Most summary sentences per prompt (per part of a long source)."""
    order: str = choice("generation", ORDERS, help=(
        "the summary's sentences in the order generated, or in source order (an extractive "
        "summary then reads like the document, as lead-k/random-k baselines do)"))
    max_source_concepts: Optional[int] = None
    """Most source concepts in one prompt; None: what the model's max_seq_len leaves room for."""
    long_input: str = choice("chunk", LONG_INPUT_MODES, help=(
        "a source longer than max_source_concepts is summarised in near-equal parts whose "
        "summaries are read in order (chunk), or cut to its first max_source_concepts (truncate)"))
    support_cosine: float = bounded(DEFAULT_MIN_COSINE, ge=-1.0, le=1.0, help=(
        "a summary sentence that is not a source segment needs this cosine to its nearest "
        "source segment (besides naming no number or name the source lacks); 0.52 separates "
        "abstract sentences from other papers' on the aclsum validation papers"))
    salience: Optional[str] = path(None, must_exist=True, space_source=True, help=(
        "a salience prior (fit_salience's output, e.g. models/salience_minilm): each source "
        "segment's learned likelihood of being summarised is added to the concepts' cosines"))
    salience_weight: float = bounded(DEFAULT_SALIENCE_WEIGHT, ge=0.0, help=(
        "the weight of the salience prior (standardised within the source) against the "
        "cosine; 0.5 was best on the aclsum validation papers"))
    title_field: Optional[str] = None
    """The .jsonl field holding each document's title (a salience feature where given)."""


@dataclass(frozen=True)
class PipelineOptions:
    """What one run of the pipeline may change beside its model, encoder and decoder."""

    stop: StopConfig = field(default_factory=StopConfig)
    sampling: dict[str, Any] = field(default_factory=dict)
    """Head sampling options laid over the checkpoint's (see ``load_checkpoint``)."""
    seed: int = 0
    language: Optional[str] = None
    max_concepts: int = 8
    """Most concepts generated per prompt."""
    order: str = "generation"
    """``generation`` or ``source``: the order of a summary's sentences."""
    max_source_concepts: Optional[int] = None
    long_input: str = "chunk"
    support_cosine: float = DEFAULT_MIN_COSINE
    """What a summary sentence needs to its nearest source segment (``lcm.pipeline.support``)."""
    padding_side: str = "left"
    """Where a batch of prompts is padded (``generate``'s batches)."""
    salience_weight: float = DEFAULT_SALIENCE_WEIGHT
    """The weight of the pipeline's salience prior, if it has one (``lcm.pipeline.salience``)."""


def continuation_options(recipe: ContinuationOptions, max_concepts: int,
                         padding_side: str = "left") -> PipelineOptions:
    """The pipeline options of a recipe that continues documents."""
    return PipelineOptions(stop=recipe.stop, sampling=recipe.sampling, seed=recipe.seed,
                           language=recipe.language, max_concepts=max_concepts,
                           padding_side=padding_side)


def summary_options(recipe: Any) -> PipelineOptions:
    """The pipeline options of a summarize recipe (``ContinuationOptions`` and
    ``SummaryOptions`` fields)."""
    return replace(continuation_options(recipe, recipe.max_summary_concepts), order=recipe.order,
                   max_source_concepts=recipe.max_source_concepts, long_input=recipe.long_input,
                   support_cosine=recipe.support_cosine, salience_weight=recipe.salience_weight)
