"""The contracts every component fulfils: Encoder, Decoder, Head, Task.

A component class declares its kind, its name, an options dataclass (``Config``, validated
from the recipe before anything runs) and, where it has one, its concept space. Weights load
lazily: constructing a component, listing it or validating a recipe never reads a checkpoint.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # torch is heavy; the listing and validation paths never need it
    import torch

    from lcm.outputs import Output


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

    @abstractmethod
    def decode(self, vectors: "torch.Tensor", language: str | None = None) -> list[str]:
        """Decode each row of ``vectors`` to a sentence (in ``language`` where supported)."""

    def decode_traced(self, vectors: "torch.Tensor",
                      language: str | None = None) -> list[DecodedSentence]:
        """``decode``, with each sentence's origin (and cosine, where the decoder knows it)."""
        return [DecodedSentence(text, self.origin) for text in self.decode(vectors, language)]

    def observe(self, sentences: Sequence[str], vectors: "torch.Tensor") -> None:
        """Sentences seen by the pipeline (e.g. the input document) with their vectors.

        Generative decoders ignore them; a retrieval decoder adds them to its bank.
        """


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


class Head(Component):
    """A prediction head: owns the training objective and the way the next concept is produced.

    Implementations are ``torch.nn.Module`` subclasses too; see ``lcm.model.heads``.
    """

    kind = "head"


class Task(Component):
    """What a recipe's ``task:`` runs. ``Config`` is the schema of the whole recipe."""

    kind = "task"

    @staticmethod
    def validate_extra(body: dict, registry: Any, result: Any, where: str) -> None:
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
        from lcm.outputs import outputs_of  # a task's outputs are claimed only when it runs

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
    notes on stderr, results and the summary line on stdout)."""

    registry: Any
    console: Any


COMPONENT_KINDS: tuple[str, ...] = ("encoder", "decoder", "head", "task")
