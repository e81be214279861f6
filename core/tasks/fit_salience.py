"""The ``fit_salience`` task: fit the summary selector's salience prior on (source, summary) pairs.

Each pair's source and summary are segmented and encoded as ``summarize`` reads them; a source
segment is positive when the greedy ROUGE-L oracle takes it (or, ``labels: nearest``, when some
summary sentence is nearest to it). Saved as ``salience.json``
with the space it was fitted in (``concept_space.json``), for a summarize recipe's ``salience``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lcm.data.document_input import DocumentInput
from lcm.errors import InputFileError
from lcm.fields import ComponentSection, bounded, choice, component, path
from lcm.interfaces import RunContext, Task
from lcm.pipeline.salience import (
    FEATURES,
    document_title,
    fit_salience,
    nearest_labels,
    oracle_labels,
    salience_features,
)
from lcm.pipeline.sources import NO_SENTENCES, encode_sentences
from lcm.spaces import write_space
from lcm.ui.words import format_counts

NO_SUMMARY = "no summary text"
LABELS = ("rouge_oracle", "nearest")


@dataclass
class FitSalienceConfig(DocumentInput):
    input: str = path(must_exist=True, help=".jsonl or .parquet of sources and their summaries")
    output: str = path(output="dir", help="directory for salience.json")
    summary_field: str = "summary"
    """The field holding each source's reference summary."""
    title_field: Optional[str] = None
    """The field holding each source's title (a feature where given)."""
    encoder: ComponentSection = component("encoder", default="minilm",
                                          help="the summariser's encoder (its concept space)")
    labels: str = choice("rouge_oracle", LABELS, help=(
        "which source sentences count as summarised: the greedy ROUGE-L oracle's (rouge_oracle) "
        "or each summary sentence's nearest by cosine (nearest)"))
    regularisation: float = bounded(0.1, gt=0.0, help=(
        "inverse L2 strength of the logistic regression (chosen on the aclsum validation papers)"))


class FitSalience(Task):
    name = "fit_salience"
    description = "Fit the summary selector's salience prior on sources and their summaries."
    Config = FitSalienceConfig

    def run(self, recipe: FitSalienceConfig, context: RunContext) -> Any:
        encoder = recipe.encoder.create()
        skipped: Counter[str] = Counter()
        examples = []
        documents = list(recipe.documents(recipe.input, on_skip=lambda r: skipped.update([r])))
        with context.console.progress("label", len(documents), "pairs") as bar:
            for raw in documents:
                bar.update(1)
                source, summary = recipe.sentences(raw.text), raw.meta.get(recipe.summary_field)
                summary = recipe.sentences(summary) if isinstance(summary, str) else []
                if not source:
                    skipped[NO_SENTENCES] += 1
                    continue
                if not summary:
                    skipped[NO_SUMMARY] += 1
                    continue
                vectors = encode_sentences(encoder, source).float().numpy()
                examples.append((salience_features(source, vectors, _title(raw.meta, recipe, encoder)),
                                 _labels(recipe, encoder, source, vectors, summary)))
        if not examples:
            raise InputFileError(Path(recipe.input), f"no pair to fit on ({format_counts(skipped)})")
        model = fit_salience(examples, recipe.regularisation)
        saved = model.save(Path(recipe.output))
        write_space(recipe.output, encoder.concept_space(encoder.config))
        strongest = sorted(zip(FEATURES, model.coefficients), key=lambda fc: -abs(fc[1]))[:4]
        context.console.outcome(
            f"fitted the salience prior on {len(examples)} pairs "
            f"({sum(len(y) for _, y in examples)} segments; skipped: {format_counts(skipped)}) "
            f"to {saved}; strongest features: "
            + ", ".join(f"{name} {weight:+.2f}" for name, weight in strongest),
            {"task": "fit_salience", "pairs": len(examples), "skipped": dict(skipped),
             "output": str(saved), "coefficients": dict(zip(FEATURES, model.coefficients))})
        return model


def _labels(recipe: FitSalienceConfig, encoder: Any, source: list[str], vectors: np.ndarray,
            summary: list[str]) -> np.ndarray:
    """The source sentences the summary counts as taken, as ``recipe.labels`` says."""
    if recipe.labels == "rouge_oracle":
        return oracle_labels(source, summary)
    return nearest_labels(vectors, encode_sentences(encoder, summary).float().numpy())


def _title(meta: dict[str, Any], recipe: FitSalienceConfig, encoder: Any
           ) -> Optional[tuple[str, np.ndarray]]:
    """The pair's title and its vector, where the recipe names a title field and it holds text."""
    title = document_title(meta, recipe.title_field)
    if title is None:
        return None
    return title, encode_sentences(encoder, [title]).float().numpy()[0]
