"""Pre-training evaluation: a checkpoint's next-concept predictions on held-out shards.

Every position of every document is predicted from the TRUE concepts before it (teacher
forcing), through the same ``DecodingSession`` generation uses, committing the true concept
instead of the prediction. So any head is evaluated the way it generates: the MSE head's
regression, a diffusion head's sampling, a quantised head's codebook choice.

Two uninformed predictors share the table as baselines: the normaliser's centre (the
per-dimension median of the training concepts, whatever the context) and the previous concept
(a copy of the context's last sentence). Documents longer than the window (``max_concepts``, at
most the model's ``max_seq_len``) are cut into windows that overlap by one concept, so each
concept but the document's first is predicted once. Metrics are computed in the encoder's space, on de-normalised predictions.

Two contrastive accuracies: against other documents' concepts (the paper's CA, which a copy of
the previous concept passes), and against the document's own other sentences (CA-doc, which
separates a model that predicts the next sentence from one that restates its context). Each
system is also drawn several times per position (seeds far apart) for its diversity.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np
import torch

from lcm.data.shards import Manifest, iter_documents
from lcm.errors import ConceptSpaceMismatchError, UserError
from lcm.evaluate import concept_metrics
from lcm.evaluate.options import PretrainingOptions
from lcm.evaluate.report import Metric, Report
from lcm.evaluate.text_metrics import rouge_l
from lcm.generate.loop import pad_prompts
from lcm.generate.session import DecodingSession
from lcm.iterutils import batched
from lcm.model.randomness import RowGenerators
from lcm.ui import progress as progress_bar

if TYPE_CHECKING:
    from torch import Tensor

    from lcm.data.shards import Document
    from lcm.model.checkpoint import LoadedModel

METRICS = [
    Metric("l2", "ℓ2", False, "distance of the prediction to the true next concept"),
    Metric("ca", "CA", True, "share of the batch's other sequences' concepts farther from the "
                             "prediction than the true next concept (0.5 = chance)"),
    Metric("ca_doc", "CA-doc", True, "share of the document's other sentences farther from the "
                                     "prediction than the true next concept (0.5 = chance)"),
    Metric("diversity", "div", False, "mean pairwise cosine of several draws of a prediction "
                                      "(1 = deterministic)"),
    Metric("par", "PAR", False, "highest cosine of the prediction to a concept of its context"),
    Metric("round_trip_l2", "ℓ2-r", False, "distance of the prediction to the encoding of its "
                                          "decoded text"),
    Metric("round_trip_cos", "cos-r", True, "cosine of the prediction to the encoding of its "
                                            "decoded text"),
    Metric("next_rouge_l", "R-L next", True, "ROUGE-L F1 of the decoded prediction against the "
                                             "true next sentence"),
    Metric("mi", "MI", True, "per-token pointwise mutual information of the decoded prediction "
                             "with the true preceding sentences, under a causal LM (nats)"),
]
MEAN_CONCEPT = "mean concept"
PREVIOUS_CONCEPT = "previous concept"
TOO_SHORT = "fewer than 2 concepts (nothing to predict)"
DRAW_SEED_STRIDE = 1_000_003
"""Seed offset between the draws of the diversity metric (rows of a batch take seed + i)."""

Predictor = Callable[["Tensor", "Tensor"], "Tensor"]
"""(B, T, D) concepts in the encoder's space, (B, T) mask -> (B, T-1, D) predictions of 1..T-1."""
SeededPredictor = Callable[[int], Predictor]
"""A seed -> the system's predictor drawing with it (uninformed baselines ignore it)."""


@dataclass
class EvaluationWindow:
    """Consecutive concepts of one document, evaluated as one sequence."""

    sentences: list[str]
    vectors: np.ndarray  # (T, D) float32


@dataclass
class TextSample:
    """A prediction kept for the text-level metrics (round trip and MI)."""

    vector: "Tensor"  # (D,)
    context: list[str]  # the true sentences before it, within its window
    target: str  # the true next sentence


@dataclass
class SystemScores:
    """Per-position values of each metric for one system, and the samples kept for decoding."""

    values: dict[str, list[float]] = field(default_factory=lambda: {m.key: [] for m in METRICS})
    samples: list[TextSample] = field(default_factory=list)
    undefined: dict[str, int] = field(default_factory=dict)
    """Positions a metric could not score, by metric (no distractor for CA, no token for MI)."""

    def extend_defined(self, metric: str, values: "Tensor | list[float]") -> None:
        """Add the values that are numbers; count the NaNs as undefined."""
        values = [float(v) for v in values]
        defined = [v for v in values if not np.isnan(v)]
        self.values[metric].extend(defined)
        if len(defined) < len(values):
            self.undefined[metric] = self.undefined.get(metric, 0) + len(values) - len(defined)


@dataclass
class ReadCounts:
    """Documents read, and those left out by reason."""

    documents: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def windows(documents: Iterable["Document"], length: int,
            counts: ReadCounts) -> Iterator[EvaluationWindow]:
    """Each document as windows of at most ``length`` concepts; too-short documents counted.

    Consecutive windows share one concept (the last of one is the first, context-only, of the
    next), so every concept but the document's first is predicted exactly once.
    """
    if length < 2:
        raise ValueError(f"a window needs at least 2 concepts, got {length}")
    for doc in documents:
        counts.documents += 1
        if len(doc.sentences) < 2:
            counts.skipped[TOO_SHORT] = counts.skipped.get(TOO_SHORT, 0) + 1
            continue
        vectors = doc.vectors.astype(np.float32)
        for start in range(0, len(vectors) - 1, length - 1):
            stop = min(start + length, len(vectors))
            yield EvaluationWindow(doc.sentences[start:stop], vectors[start:stop])



def _stack(batch: list[EvaluationWindow]) -> tuple["Tensor", "Tensor"]:
    """Right-padded (B, T, D) concepts and their (B, T) mask."""
    return pad_prompts([torch.from_numpy(w.vectors) for w in batch], side="right")


# ----------------------------------------------------------------------------- predictors

def teacher_forced(model: Any, concepts: "Tensor", mask: "Tensor", seed: int) -> "Tensor":
    """(B, T, D) normalised concepts -> (B, T-1, D) the head's normalised prediction of each
    position from the true ones before it (row i's randomness seeded ``seed + i``)."""
    predictions = []
    with torch.no_grad():
        generators = RowGenerators.seeded(seed, concepts.shape[0], concepts.device)
        session = DecodingSession(model, concepts[:, :1], mask[:, :1], generators).start()
        for t in range(1, concepts.shape[1]):
            predictions.append(session.propose())  # (B, D)
            session.commit(concepts[:, t])  # the true concept, not the prediction
    return torch.stack(predictions, dim=1)


def model_predictor(loaded: "LoadedModel", seed: int) -> Predictor:
    """The checkpoint's head, teacher-forced, in the encoder's space."""
    model, normalizer = loaded.model, loaded.normalizer
    device = next(model.parameters()).device

    def predict(concepts: "Tensor", mask: "Tensor") -> "Tensor":
        normalised = normalizer.normalize(concepts.to(device))
        return normalizer.denormalize(teacher_forced(model, normalised, mask.to(device), seed)).cpu()

    return predict


def mean_concept_predictor(normalizer: Any) -> Predictor:
    """Always the normaliser's centre: the median training concept, blind to the context."""
    center = torch.from_numpy(np.asarray(normalizer.center, dtype=np.float32))
    return lambda concepts, mask: center.expand(concepts.shape[0], concepts.shape[1] - 1, -1)


def previous_concept_predictor(concepts: "Tensor", mask: "Tensor") -> "Tensor":
    """The last concept of the context, repeated."""
    return concepts[:, :-1]


# ----------------------------------------------------------------------------- evaluation

def evaluate_pretraining(loaded: "LoadedModel", shards: str, options: PretrainingOptions,
                         encoder: Any = None, decoder: Any = None, mi_scorer: Any = None,
                         progress: bool = True) -> Report:
    """The table of ``METRICS`` for the checkpoint's head and the two uninformed predictors.

    Round-trip ℓ2 and cosine need ``encoder`` and ``decoder``, ROUGE-L against the next sentence
    ``decoder``, MI ``decoder`` and ``mi_scorer`` (a ``ContextMutualInformation``); they run on
    the first ``max_decoded`` predictions of each system only, since decoding dominates the cost.
    """
    manifest = Manifest.read(shards)
    if manifest.space != loaded.space:
        raise ConceptSpaceMismatchError(
            f"shards {shards} hold {manifest.space} concepts; the checkpoint was trained in {loaded.space}")
    head_name = loaded.model.head.name
    mean_concept = mean_concept_predictor(loaded.normalizer)
    systems: dict[str, SeededPredictor] = {
        f"model ({head_name})": lambda seed: model_predictor(loaded, seed),
        MEAN_CONCEPT: lambda seed: mean_concept,
        PREVIOUS_CONCEPT: lambda seed: previous_concept_predictor,
    }
    predictors = {system: seeded(options.seed) for system, seeded in systems.items()}
    scores = {system: SystemScores() for system in predictors}
    length = min(options.max_concepts, loaded.model.config.max_seq_len)
    if length < 2:
        raise UserError(f"max_concepts must be at least 2 (one context concept and one to predict), "
                        f"got {options.max_concepts}")
    counts = ReadCounts()
    total = min(manifest.documents, options.max_documents or manifest.documents)
    documents = progress_bar("evaluate", total, "documents", shown=progress).track(
        islice(iter_documents(shards), options.max_documents))
    with torch.no_grad():
        for batch in batched(windows(documents, length, counts), options.batch_size):
            concepts, mask = _stack(batch)
            for system, predict in predictors.items():
                predicted = predict(concepts, mask)
                _score_batch(batch, concepts, mask, predicted, scores[system],
                             options.max_decoded if decoder is not None else 0)
                _score_diversity(systems[system], options, concepts, mask, predicted,
                                 scores[system])
    documents.close()

    for collected in scores.values():
        if collected.samples:
            _score_texts(collected, decoder, encoder, mi_scorer, options.language)

    report = Report("pre-training metrics (teacher forcing)", METRICS)
    for system, collected in scores.items():
        for metric, values in collected.values.items():
            report.add(system, metric, values)
    report.settings = {
        "shards": str(shards), "space": str(loaded.space), "head": head_name,
        "documents": counts.documents, "skipped": counts.skipped, "window": length,
        "batch_size": options.batch_size, "seed": options.seed,
        "decoded_per_system": options.max_decoded if decoder is not None else 0,
        "round_trip": encoder is not None and decoder is not None,
        "mutual_information": mi_scorer is not None and decoder is not None,
        "contrastive_distractors": "true next concepts of the other sequences of the batch",
        "in_document_distractors": "the window's other concepts (the document's, when it fits)",
        "diversity_draws": options.diversity_draws,
        MEAN_CONCEPT: "the normaliser's centre (per-dimension median of the training concepts)",
        PREVIOUS_CONCEPT: "a copy of the last context concept",
        "undefined": {system: collected.undefined for system, collected in scores.items()
                      if collected.undefined},
    }
    return report


def _score_texts(scores: SystemScores, decoder: Any, encoder: Any, mi_scorer: Any,
                 language: str | None) -> None:
    """Round trip, ROUGE-L against the true next sentence and MI of the kept samples (decoding
    each only once)."""
    vectors = torch.stack([s.vector for s in scores.samples])  # (N, D)
    if encoder is not None:
        distances, cosines, texts = concept_metrics.round_trip(vectors, decoder, encoder, language)
        scores.values["round_trip_l2"].extend(distances.tolist())
        scores.values["round_trip_cos"].extend(cosines.tolist())
    else:
        texts = decoder.decode(vectors, language=language)
    scores.values["next_rouge_l"].extend(rouge_l(text, sample.target)
                                         for text, sample in zip(texts, scores.samples))
    if mi_scorer is not None:
        scores.extend_defined("mi", mi_scorer.score([s.context for s in scores.samples], texts))


def _score_diversity(seeded: SeededPredictor, options: PretrainingOptions, concepts: "Tensor",
                     mask: "Tensor", predicted: "Tensor", scores: SystemScores) -> None:
    """Diversity of the batch's predictions (while fewer than ``max_decoded`` are scored):
    ``predicted`` and ``diversity_draws - 1`` more draws, each seeded far from the others."""
    room = options.max_decoded - len(scores.values["diversity"])
    if options.diversity_draws < 2 or room <= 0:
        return
    valid = mask[:, 1:]
    draws = [predicted] + [seeded(options.seed + k * DRAW_SEED_STRIDE)(concepts, mask)
                           for k in range(1, options.diversity_draws)]
    flat = torch.stack([d[valid] for d in draws])[:, :room]  # (K, N, D)
    scores.values["diversity"].extend(concept_metrics.draw_diversity(flat).tolist())


def _score_batch(batch: list[EvaluationWindow], concepts: "Tensor", mask: "Tensor",
                 predicted: "Tensor", scores: SystemScores, max_decoded: int) -> None:
    """Add one batch's per-position ℓ2, both CAs and PAR to ``scores``; keep text samples."""
    valid = mask[:, 1:]  # (B, T-1): position t+1 exists
    sequence = torch.arange(len(batch))[:, None].expand_as(valid)[valid]  # (N,)
    flat_predicted, flat_target = predicted[valid], concepts[:, 1:][valid]  # (N, D)
    scores.values["l2"].extend(concept_metrics.l2_distances(flat_predicted, flat_target).tolist())
    scores.extend_defined("ca", concept_metrics.contrastive_accuracy(flat_predicted, flat_target, sequence))
    for i, window in enumerate(batch):
        steps = len(window.sentences) - 1
        scores.values["par"].extend(
            concept_metrics.paraphrase_scores(predicted[i, :steps], concepts[i, :steps + 1]).tolist())
        scores.values["ca_doc"].extend(concept_metrics.in_document_accuracy(
            predicted[i, :steps], concepts[i, :steps + 1]).tolist())
        for t in range(steps):
            if len(scores.samples) >= max_decoded:
                break
            scores.samples.append(TextSample(predicted[i, t].clone(), window.sentences[:t + 1],
                                             window.sentences[t + 1]))
