"""The contracts every component fulfils: Encoder, Decoder, Head, Task.

A component class declares its kind, its name, an options dataclass (``Config``, validated
from the recipe before anything runs) and, where it has one, its concept space. Weights load
lazily: constructing a component, listing it or validating a recipe never reads a checkpoint.
"""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from lcm.errors import DataIntegrityError
from lcm.outputs import outputs_of

if TYPE_CHECKING:  # torch is heavy; the listing and validation paths never need it
    import torch

    from lcm.model.config import TransformerConfig
    from lcm.model.randomness import RowGenerators
    from lcm.model.transformer import KVCache
    from lcm.outputs import Output
    from lcm.registry import Registry
    from lcm.ui.terminal import Terminal


@dataclass(frozen=True)
class ConceptSpace:
    """The vector space concepts live in; components of different spaces never mix."""

    name: str
    dim: int

    def __str__(self) -> str:
        return f"{self.name} ({self.dim}-d)"

    def record(self) -> dict[str, Any]:
        """The space as every file lcm writes records it (``from_record`` reads it back)."""
        return {"name": self.name, "dim": self.dim}

    @classmethod
    def from_record(cls, data: Any) -> "ConceptSpace":
        """The space a file recorded; ValueError if ``data`` is not one."""
        if not (isinstance(data, dict) and "name" in data and "dim" in data):
            raise ValueError(f"not a concept space record: {data!r}")
        space = cls(str(data["name"]), int(data["dim"]))
        if space.dim <= 0:
            raise ValueError(f"a concept space needs a positive dimension, got {space.dim}")
        return space


class Normalizer(Protocol):
    """Maps concepts of an encoder's space into a model's space and back (works on tensors and
    arrays alike); ``lcm.data.normalizer.RobustScaler`` is the one lcm fits."""

    space: ConceptSpace

    def normalize(self, x: Any) -> Any:
        """Encoder space -> model space."""

    def denormalize(self, x: Any) -> Any:
        """Model space -> encoder space."""


@dataclass
class NoOptions:
    """Options of a component that takes none."""


class Component(ABC):
    """What every registered component shares."""

    kind: ClassVar[str]
    name: ClassVar[str]
    Config: ClassVar[type] = NoOptions
    description: ClassVar[str] = ""
    modalities: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def concept_space(cls, config: Any) -> ConceptSpace | None:
        """The concept space this component works in, given its options (None: any)."""
        return None


class Encoder(Component):
    """Maps a batch of inputs of one of its ``modalities`` to an ``[N, dim]`` float tensor."""

    kind = "encoder"
    modalities = ("text",)

    @abstractmethod
    def encode(self, inputs: Sequence[Any]) -> "torch.Tensor":
        """Encode ``inputs`` (sentences, or audio segments for speech) to ``[N, dim]``."""


@dataclass(frozen=True)
class EncodedSegment:
    """One concept of a document an encoder read and segmented itself."""

    text: str
    """What the segment says (for speech: its transcript, or a placeholder where there is none)."""
    vector: "torch.Tensor"  # (dim,), the encoder's own space
    start_s: float | None = None
    """Where the segment starts in a recording (seconds); None for text."""
    end_s: float | None = None


@runtime_checkable
class DocumentEncoder(Protocol):
    """Optional: an encoder that takes a whole document by path and segments it itself.

    Speech encoders offer it, since core knows no audio: they read the recording, cut it into
    utterances and encode them. Segments are yielded in order, so a caller can show progress
    and an hour-long recording never has to be held in memory whole.
    """

    def encode_document(self, path: str) -> Iterable[EncodedSegment]:
        """The segments of the document at ``path``, in order."""


@dataclass(frozen=True)
class DecodedSentence:
    """A decoded sentence with where it came from."""

    text: str
    origin: str
    """"generated" (written by a model) or "retrieved" (an existing sentence looked up)."""
    cosine: float | None = None
    """Cosine of the sentence's vector (re-encoded, or the bank's) to the concept, where known."""
    generated_cosine: float | None = None
    """Where a retrieved sentence won over generated candidates: the best generated one's cosine
    (why retrieval won, in one number)."""


class Decoder(Component):
    """Maps ``[N, dim]`` concept vectors back to text."""

    kind = "decoder"
    modalities = ("text",)
    origin: ClassVar[str] = "generated"
    """What ``decode_traced`` reports for this decoder's sentences by default."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every decoder, a third party's too, refuses NaN/inf vectors at its entry: sampling
        would crash on them and beam search return "" with cosine NaN."""
        super().__init_subclass__(**kwargs)
        for name in ("decode", "decode_traced", "candidates"):
            if name in cls.__dict__:
                setattr(cls, name, _refusing_nonfinite(cls.__dict__[name]))

    @abstractmethod
    def decode(self, vectors: "torch.Tensor", language: str | None = None) -> list[str]:
        """Decode each row of ``vectors`` to a sentence (in ``language`` where supported)."""

    def decode_traced(self, vectors: "torch.Tensor",
                      language: str | None = None) -> list[DecodedSentence]:
        """``decode``, with each sentence's origin (and cosine, where the decoder knows it)."""
        return [DecodedSentence(text, self.origin) for text in self.decode(vectors, language)]

    def candidates(self, vectors: "torch.Tensor",
                   language: str | None = None) -> list[list[tuple[str, str]]]:
        """Each row's candidate sentences as ``(text, origin)`` pairs, for the pipeline's
        selector to choose among under a summary's rules (support, coverage, repetition). A
        decoder that writes several sentences per concept returns them all; by default, the
        one ``decode_traced`` picks."""
        return [[(d.text, d.origin)] for d in self.decode_traced(vectors, language)]

    def observe(self, sentences: Sequence[str], vectors: "torch.Tensor") -> None:
        """Sentences seen by the pipeline (e.g. the input document) with their vectors.

        Generative decoders ignore them; a retrieval decoder adds them to its bank.
        """

    def forget(self) -> bool:
        """Drop what ``observe`` saw, so the next source starts clean; True when done. A
        decoder that keeps observed sentences and cannot forget them returns False (the
        default, unless it never overrides ``observe``), and the pipeline then builds a fresh
        one per source instead of reusing it."""
        return type(self).observe is Decoder.observe


def _refusing_nonfinite(method: Any) -> Any:
    @functools.wraps(method)
    def checked(self: Decoder, vectors: Any, *args: Any, **kwargs: Any) -> Any:
        check_finite_vectors(vectors, f"decoder {getattr(self, 'name', type(self).__name__)}")
        return method(self, vectors, *args, **kwargs)
    return checked


def check_finite_vectors(vectors: Any, where: str) -> None:
    """Refuse concept vectors (a tensor or an array, ``[N, dim]``) holding NaN/inf."""
    values = vectors.detach().float().cpu().numpy() if hasattr(vectors, "detach") else np.asarray(vectors)
    bad_rows = ~np.isfinite(values).reshape(len(values), -1).all(axis=1) if values.ndim else []
    if np.any(bad_rows):
        raise DataIntegrityError(f"{where}: {int(np.sum(bad_rows))} of {len(values)} concept "
                                 f"vector(s) hold NaN/inf (first: row {int(np.argmax(bad_rows))}); "
                                 f"refusing to decode them")


@runtime_checkable
class TokenLikelihood(Protocol):
    """Optional decoder capability: how likely a sentence's tokens are given a concept.

    The likelihood is differentiable in the concept while the decoder's own weights stay
    frozen, so a head can learn the next concept through the decoder (the ``decoder_ce`` head,
    after SONAR-LLM). A recipe pairing such a head with a decoder without it is refused.
    """

    def token_nll(self, vectors: "torch.Tensor",
                  sentences: Sequence[str]) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Summed negative log-likelihood of each sentence's tokens given its row of ``vectors``
        (N,), with gradients to ``vectors``; and the number of tokens scored per sentence (N,)."""

    def weights_identity(self) -> dict[str, str]:
        """Which weights compute the likelihood (plugin name and model), so a model trained
        through this decoder can refuse another one at generation."""


class Backbone(Protocol):
    """What a head sees of the model (``ConceptModel.backbone``): the concept Transformer and
    the PreNet that feeds it, never the whole model."""

    config: "TransformerConfig"

    def embed(self, concepts: "torch.Tensor") -> "torch.Tensor":
        """(B, T, D) normalised concepts -> (B, T, d) trunk inputs (the PreNet)."""

    def contextualize(self, inputs: "torch.Tensor", mask: "torch.Tensor | None" = None,
                      cache: "KVCache | None" = None, *, positions: "torch.Tensor | None" = None,
                      attn_mask: "torch.Tensor | None" = None) -> "torch.Tensor":
        """(B, T, d) trunk inputs -> (B, T, d) states, causally, after ``cache``'s positions
        (which it extends). ``mask`` (B, T): real inputs; ``positions`` (B, T) and ``attn_mask``
        (B, T, S) replace the default position count and causal mask (One-Tower's interleaving)."""

    def new_cache(self, batch_size: int, capacity: int) -> "KVCache":
        """An empty KV cache for ``batch_size`` sequences."""


@dataclass
class LossOutput:
    """A training loss and the figures worth logging beside it."""

    loss: "torch.Tensor"
    """Scalar to back-propagate."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Detached figures (e.g. ``mse``, ``l2``) for logs."""


@dataclass
class GenerationState:
    """Everything a head may read or update while continuing a batch of documents."""

    context: "torch.Tensor"
    """(B, S, D) normalised concepts so far: the prompt, then the generated ones."""
    context_mask: "torch.Tensor"
    """(B, S) bool, True where ``context`` holds a real concept (False: padding)."""
    cache: "KVCache | None" = None
    """The trunk's keys/values for ``context`` (filled by ``start``)."""
    hidden: "torch.Tensor | None" = None
    """(B, d) trunk output at each document's last real concept: what predicts the next one."""
    generators: "RowGenerators | None" = None
    """Randomness of heads that sample, one generator per document (seeded by the caller)."""
    step: int = 0
    """Number of concepts generated so far."""
    extra: Any = None
    """Head-owned state (a denoiser's cache, codebook choices, ...)."""
    memo: dict = field(default_factory=dict)
    """What a head computes once per generation and reuses at every concept (a diffusion
    head's per-timestep conditioning); lives and dies with the session."""
    uncached: bool = False
    """Recompute instead of reusing: the session re-reads the context at every step, and a head
    with faster paths of its own (a diffusion head's denoiser caches) does not take them."""

    @property
    def batch_size(self) -> int:
        return self.context.shape[0]


class Head(Component):
    """A prediction head: owns the training objective and the way the next concept is produced.

    A head never sees the model: it gets a ``Backbone``. Training calls ``loss``; generation,
    driven by one ``lcm.generate.session.DecodingSession``, calls ``start`` once (read the prompt),
    then per step ``next_concept`` (propose) and ``append`` (commit the chosen ones), and
    ``keep_rows`` when documents finish. All concepts a head sees are NORMALISED. Implement it by
    subclassing ``lcm.model.heads.HeadModule`` (an ``nn.Module``), which gives ``start``,
    ``append`` and ``keep_rows`` their usual trunk-pass defaults; the methods below say what
    every head may override.
    """

    kind = "head"
    sampling_options: ClassVar[tuple[str, ...]] = ()
    """Options (dotted paths) a generating recipe may change in a trained model: how the next
    concept is drawn, never what the weights compute (see ``load_checkpoint``'s ``sampling``)."""
    reads_sentences: ClassVar[bool] = False
    """True for a head whose ``loss`` also takes ``sentences`` (each row's text, one per
    concept): the training data path then carries the text, which other heads never pay for."""

    def checkpoint_options(self) -> dict[str, Any]:
        """Options to record in a checkpoint beside the recipe's, so that loading rebuilds this
        head from the checkpoint alone (e.g. the shapes of codebooks held in the weights, so
        the quantizer directory they came from is not needed). Default: none."""
        return {}

    def bind_normalizer(self, normalizer: Normalizer) -> None:
        """Called wherever the model meets its normaliser (training, loading a checkpoint), for
        a head that needs concepts in the encoder's own space (one that learns through a
        decoder). Default: nothing; heads work on normalised concepts."""

    def trained_through(self) -> dict[str, str] | None:
        """The decoder weights this head learned through (``TokenLikelihood.weights_identity``),
        which generation must decode with; None: any decoder of the space."""
        return None

    def loss(self, backbone: Backbone, concepts: "torch.Tensor", mask: "torch.Tensor",
             target_mask: "torch.Tensor | None" = None) -> LossOutput:
        """Training loss on normalised ``concepts`` (B, T, D); ``mask`` (B, T) marks real ones.

        ``target_mask`` (B, T): when given, only the concepts it marks are predicted (and
        scored); the others are context only (``lcm.model.heads.next_concept_pairs`` /
        ``learned_positions``). A head with ``reads_sentences`` also takes ``sentences=``.
        """
        raise NotImplementedError

    def start(self, backbone: Backbone, state: GenerationState) -> None:
        """Read the prompt in ``state.context``: fill ``state.cache`` and ``state.hidden``."""
        raise NotImplementedError

    def next_concept(self, backbone: Backbone, state: GenerationState) -> "torch.Tensor":
        """The next normalised concept of each document, (B, D)."""
        raise NotImplementedError

    def append(self, backbone: Backbone, state: GenerationState, concepts: "torch.Tensor") -> None:
        """Commit ``concepts`` (B, D) as the next context position; update ``state.hidden``."""
        raise NotImplementedError

    def keep_rows(self, state: GenerationState, rows: "torch.Tensor") -> None:
        """Keep only the documents ``rows`` (indices) in the head's part of ``state`` (the
        session has already cut context, mask and generators): finished documents leave the
        batch. A head with batched ``state.extra`` extends the default."""
        raise NotImplementedError


class Task(Component):
    """What a recipe's ``task:`` runs. ``Config`` is the schema of the whole recipe."""

    kind = "task"

    @staticmethod
    def validate_extra(body: dict, registry: "Registry", result: Any, where: str) -> None:
        """Checks the schema cannot express (a pipeline validates its steps here): append
        to ``result.problems``; ``body`` is the raw recipe body, ``where`` its label."""

    @staticmethod
    def section_defaults(body: dict) -> dict[str, dict[str, Any]]:
        """Options to lay under the recipe's component sections before they are resolved, by
        field (train: the head options its architecture was published with). Default: none."""
        return {}

    @staticmethod
    def outputs(recipe: Any) -> list["Output"]:
        """The paths this task writes, claimed (locked, checked) before it runs. Default: the
        recipe's ``path(output=...)`` fields; a task whose outputs derive from one another
        names them itself."""
        return outputs_of(recipe)

    @staticmethod
    def continues(recipe: Any) -> bool:
        """True when this run carries on an earlier run in its outputs (a resumed training),
        which it may then replace. Default: never."""
        return False

    @abstractmethod
    def run(self, recipe: Any, context: "RunContext") -> Any:
        """Run with a validated recipe (an instance of ``Config``, component sections resolved)."""


@dataclass
class RunContext:
    """What a task runs with besides its recipe: the registry the recipe was validated and
    resolved against (for what a task builds by name at run time, such as pipeline steps or a
    checkpoint's head), and the terminal it reports through (``lcm.ui.Terminal``: progress and
    notes on stderr, results and the outcome line on stdout)."""

    registry: "Registry"
    console: "Terminal"


COMPONENT_KINDS: tuple[str, ...] = ("encoder", "decoder", "head", "task")
