"""A learned salience prior over a source's segments: which of them an abstract would say.

The summariser's concepts alone pick source sentences no better than centrality (TextRank) does
(docs/summarization.md). What an abstract takes from a paper is also told by where a sentence
stands, how long it is, whether it shares the title's words and vector, and the cue phrases of
a contribution ("we propose", "this paper", "results show"). ``fit_salience`` fits a logistic
model of "the abstract's greedy ROUGE-L oracle takes this sentence" (or "some abstract
sentence is nearest to it") on those features of the training pairs; the selector adds its
standardised score, times a weight, to each concept's cosine.

Saved as JSON (feature names, the scaler and the coefficients: nothing to unpickle) beside the
concept space its cosines were computed in. A source with no title gets the training mean for
the title's features, i.e. no evidence either way.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from lcm.errors import InputFileError
from lcm.evaluate.baselines import centroid_scores, textrank_scores, unit_rows

SALIENCE_FILE = "salience.json"
DEFAULT_WEIGHT = 0.5
"""The prior's weight against the cosine: the best of 0, 0.3, 0.5 and 1.0 on the aclsum
validation papers (docs/summarization.md)."""
CUES = {
    "cue_this_paper": r"\b(this|our|the present) (paper|work|article|study)\b|\bin this (paper|work)\b",
    "cue_we_verb": r"\bwe (propose|present|introduce|describe|show|demonstrate|find|report|"
                   r"develop|investigate|explore|evaluate|apply)\b",
    "cue_results": r"\b(results?|experiments?) (show|indicate|demonstrate|suggest)",
    "cue_claim": r"\b(outperform\w*|state-of-the-art|significant(ly)?|improve(s|ment)?)\b",
    "cue_caption": r"^(figure|fig\.|table)\s*\d",
    "cue_we": r"\b(we|our)\b",
    "cue_number": r"\d",
    "cue_citation": r"\[|\(\w+,? (et al\.?,? )?\d{4}\)|et al",
}
"""Cue phrases, as features; English (the salience prior is fitted on English papers)."""
TITLE_FEATURES = ("title_cosine", "title_words")
FEATURES = ("centroid_cosine", "pagerank", *TITLE_FEATURES, "position", "position_squared",
            "log_words", "short", "long", *CUES)
_WORD = re.compile(r"\w+")


def document_title(meta: dict[str, Any], field: Optional[str]) -> Optional[str]:
    """A document's title from its record's ``field``, where the recipe names one and it holds
    text (a missing or empty title is no evidence, not an error)."""
    title = meta.get(field) if field else None
    return title if isinstance(title, str) and title.strip() else None


def salience_features(texts: Sequence[str], vectors: np.ndarray,
                      title: Optional[tuple[str, np.ndarray]] = None) -> np.ndarray:
    """One row of ``FEATURES`` per segment (``vectors``: (N, D)); the title's columns are NaN
    without a ``(title text, title vector)``."""
    unit = unit_rows(vectors)
    count = len(texts)
    position = np.arange(count) / max(count - 1, 1)
    words = np.array([len(text.split()) for text in texts], dtype=np.float64)
    columns = [centroid_scores(unit), count * textrank_scores(unit), *_title_columns(texts, unit, title),
               position, position ** 2, np.log1p(words), words < 8, words > 40]
    columns += [np.array([bool(re.search(p, t, re.I)) for t in texts], dtype=np.float64)
                for p in CUES.values()]
    return np.column_stack(columns).astype(np.float64)


def _title_columns(texts: Sequence[str], unit: np.ndarray,
                   title: Optional[tuple[str, np.ndarray]]) -> list[np.ndarray]:
    if title is None:
        return [np.full(len(texts), np.nan)] * len(TITLE_FEATURES)
    title_words = {w.lower() for w in _WORD.findall(title[0]) if len(w) > 3}
    shared = [len(title_words & {w.lower() for w in _WORD.findall(t)}) / max(len(title_words), 1)
              for t in texts]
    return [unit @ unit_rows(np.asarray(title[1])[None])[0], np.array(shared, dtype=np.float64)]


@dataclass(frozen=True)
class SalienceModel:
    """A fitted salience prior: standardise the features, then a linear score."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coefficients: tuple[float, ...]
    intercept: float

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Standardised (mean 0, sd 1 within the source) salience of each row of ``features``;
        a missing feature (NaN, a source without title) counts as the training mean."""
        mean, scale = np.asarray(self.mean), np.asarray(self.scale)
        standard = np.nan_to_num((features - mean) / scale, nan=0.0)
        logits = standard @ np.asarray(self.coefficients) + self.intercept
        return (logits - logits.mean()) / max(float(logits.std()), 1e-9)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / SALIENCE_FILE
        target.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return target

    @classmethod
    def load(cls, location: str | Path) -> "SalienceModel":
        """From a directory holding ``salience.json`` (or the file itself); refuses a file of
        other features."""
        path = Path(location)
        path = path / SALIENCE_FILE if path.is_dir() else path
        try:
            fields = json.loads(path.read_text())
            model = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
        except (OSError, ValueError, TypeError) as error:
            raise InputFileError(path, f"not a salience model ({error})") from None
        if model.features != FEATURES:
            raise InputFileError(path, f"its features {list(model.features)} are not this "
                                       f"version's {list(FEATURES)}: refit it (fit_salience)")
        return model


def fit_salience(examples: Sequence[tuple[np.ndarray, np.ndarray]],
                 regularisation: float = 0.1) -> SalienceModel:
    """Fit on ``(features, labels)`` per source (labels 1 for the segments a summary takes):
    scikit-learn's L2 logistic regression on standardised features (a feature
    missing in a source, e.g. the title's, takes the mean)."""
    # lazy: scikit-learn loads only to fit
    from sklearn.linear_model import LogisticRegression

    features = np.vstack([f for f, _ in examples])
    labels = np.concatenate([y for _, y in examples])
    mean = np.nanmean(features, axis=0)
    scale = np.nanstd(features, axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    standard = np.nan_to_num((features - mean) / scale, nan=0.0)
    fitted = LogisticRegression(C=regularisation, max_iter=5000).fit(standard, labels)
    return SalienceModel(FEATURES, tuple(map(float, mean)), tuple(map(float, scale)),
                         tuple(map(float, fitted.coef_[0])), float(fitted.intercept_[0]))


def oracle_labels(source: Sequence[str], summary: Sequence[str]) -> np.ndarray:
    """1.0 for the source sentences of the greedy ROUGE-L oracle: sentences added one at a time,
    each the one that raises the selection's ROUGE-L against ``summary`` most, until none
    raises it or the selection is as long as ``summary`` (the labels of supervised extractive
    summarisers since SummaRuNNer)."""
    from lcm.evaluate.text_metrics import rouge_l  # lazy: rouge-score loads only to fit

    reference, chosen, best = " ".join(summary), [], 0.0
    while len(chosen) < min(len(summary), len(source)):
        gains = [(rouge_l(" ".join(source[j] for j in sorted(chosen + [i])), reference), i)
                 for i in range(len(source)) if i not in chosen]
        score, index = max(gains)
        if score <= best:
            break
        chosen.append(index)
        best = score
    labels = np.zeros(len(source))
    labels[chosen] = 1.0
    return labels


def nearest_labels(source_vectors: np.ndarray, summary_vectors: np.ndarray) -> np.ndarray:
    """1.0 for each source segment that is some summary sentence's nearest (cosine), else 0."""
    labels = np.zeros(len(source_vectors))
    labels[(unit_rows(summary_vectors) @ unit_rows(source_vectors).T).argmax(axis=1)] = 1.0
    return labels
