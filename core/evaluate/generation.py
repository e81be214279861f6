"""Evaluation of generated summaries (or any source -> output task) against extractive baselines.

Input: a JSONL file, one example per line, with a ``source`` (a list of sentences, or a text that
is split into capped sentences as ``prepare`` splits documents), a ``reference`` (text or list of
sentences) and, optionally, a ``prediction`` (the model's output, text or list of sentences).
Without predictions only the baselines are scored. Every system is scored on the same examples:
the model's outputs, lead-k and random-k, and where sentences can be encoded, centroid-k,
TextRank-k and the oracle (each reference sentence's nearest source sentence, in source order:
the ceiling of extractive selection), with two more measures of each output:

- unsupported: the share of its sentences the source does not support (``lcm.pipeline.support``);
- coverage: the share of the reference's sentences whose nearest source sentence is also the
  nearest source sentence of one of the output's (what of the reference's content it covers).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from lcm.data.readers import parse_json_line
from lcm.errors import InputFileError
from lcm.evaluate import text_metrics
from lcm.evaluate.baselines import centroid_k, lead_k, random_k, textrank_k
from lcm.evaluate.report import Metric, Report
from lcm.pipeline.support import SourceSupport
from lcm.ui import progress as progress_bar

METRICS = [
    Metric("rouge_l", "ROUGE-L", True, "ROUGE-L F-measure against the reference (stemmed)"),
    Metric("ovl_3", "OVL-3", True, "share of the output's 3-grams found in the source"),
    Metric("rep_4", "REP-4", False, "1 - distinct/total 4-grams within the output"),
]
ENCODED_METRICS = [
    Metric("unsupported", "unsupported", False,
           "share of the output's sentences the source does not support"),
    Metric("coverage", "coverage", True,
           "share of the reference's sentences whose nearest source sentence the output covers"),
    Metric("sentences", "sentences", True, "sentences per output (the reference's: see settings)"),
]
MODEL_SYSTEM = "model"
ORACLE_SYSTEM = "oracle"


@dataclass
class FieldNames:
    source: str = "source"
    reference: str = "reference"
    prediction: str = "prediction"


@dataclass
class Example:
    """One validated input line."""

    where: str  # "file:line", for messages
    source: list[str]  # sentences
    reference: list[str]  # sentences
    prediction: list[str] | None  # sentences


Splitter = Callable[[str], list[str]]
Encode = Callable[[list[str]], Any]
"""Sentences to their vectors (a numpy array or tensor ``[N, dim]``)."""


def read_examples(path: str | Path, split: Splitter,
                  fields: FieldNames | None = None) -> list[Example]:
    """Every example of a JSONL file; any malformed line is an error naming ``file:line``.

    Blank lines are not records and are passed over. Either every example has a prediction or
    none has: a file mixing both is refused rather than scoring the model on a subset.
    """
    path, fields = Path(path), fields or FieldNames()
    if not path.is_file():
        raise InputFileError(path, "input file not found")
    examples = [_example(f"{path}:{number}", record, split, fields)
                for number, record in _json_records(path)]
    if not examples:
        raise InputFileError(path, "holds no examples (expected JSON lines with "
                                   f"{fields.source!r} and {fields.reference!r})")
    with_prediction = [e for e in examples if e.prediction is not None]
    if with_prediction and len(with_prediction) != len(examples):
        lacking = next(e for e in examples if e.prediction is None)
        raise InputFileError(lacking.where, f"missing field {fields.prediction!r}, which "
                                            f"{len(with_prediction)} other example(s) have")
    return examples


def _json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line_number, parsed JSON)`` of each non-blank line, decoded as strict UTF-8."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputFileError(where, f"not valid UTF-8 (byte {exc.start} of the line)") from None
            if not line.strip():
                continue
            yield number, parse_json_line(line, where)


def _example(where: str, record: Any, split: Splitter, fields: FieldNames) -> Example:
    if not isinstance(record, dict):
        raise InputFileError(where, f"expected a JSON object, got {type(record).__name__}")
    for name in (fields.source, fields.reference):
        if name not in record:
            raise InputFileError(where, f"missing field {name!r} (fields: {', '.join(record) or 'none'})")
    source = _sentences(where, fields.source, record[fields.source], split)
    reference = _sentences(where, fields.reference, record[fields.reference], split)
    for name, sentences in ((fields.source, source), (fields.reference, reference)):
        if not sentences:
            raise InputFileError(where, f"field {name!r} is empty")
    prediction = None
    if record.get(fields.prediction) is not None:
        prediction = _sentences(where, fields.prediction, record[fields.prediction], split)
    return Example(where, source, reference, prediction)


def _sentences(where: str, name: str, value: Any, split: Splitter) -> list[str]:
    """A field as sentences: a list is taken as given, a text is split."""
    if isinstance(value, str):
        return split(value)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return [s.strip() for s in value if s.strip()]
    raise InputFileError(where, f"field {name!r} must be a text or a list of sentences, "
                                f"got {type(value).__name__}")


def evaluate_generation(examples: list[Example], k: int | None, seed: int,
                        progress: bool = True, encode: Encode | None = None) -> Report:
    """Score the model's outputs (if any) and the extractive baselines on ``examples``.

    ``k=None``: each baseline takes as many sentences as the example's reference has.
    ``encode``: sentences -> vectors ``[N, dim]``; adds centroid-k and TextRank-k.
    """
    label = "k" if k is None else str(k)
    systems = ([MODEL_SYSTEM] if examples[0].prediction is not None else []) + \
              [f"lead-{label}", f"random-{label}"] + \
              ([f"centroid-{label}", f"textrank-{label}", ORACLE_SYSTEM] if encode is not None else [])
    metrics = METRICS + (ENCODED_METRICS if encode is not None else [])
    scores: dict[str, dict[str, list[float]]] = {s: {m.key: [] for m in metrics} for s in systems}
    bar = progress_bar("score", len(examples), "examples", shown=progress)
    for index, example in enumerate(bar.track(examples)):
        count = len(example.reference) if k is None else k
        outputs = {f"lead-{label}": lead_k(example.source, count),
                   f"random-{label}": random_k(example.source, count, seed, index)}
        grounding = None
        if encode is not None:
            vectors = encode(example.source)
            for name, pick in (("centroid", centroid_k), ("textrank", textrank_k)):
                outputs[f"{name}-{label}"] = [example.source[i] for i in pick(vectors, count)]
            grounding = _Grounding(example, vectors, encode)
            outputs[ORACLE_SYSTEM] = grounding.oracle()
        if example.prediction is not None:
            outputs[MODEL_SYSTEM] = example.prediction
        reference = " ".join(example.reference)
        for system, sentences in outputs.items():
            text = " ".join(sentences)
            scores[system]["rouge_l"].append(text_metrics.rouge_l(text, reference))
            scores[system]["ovl_3"].append(text_metrics.ngram_overlap(sentences, example.source))
            scores[system]["rep_4"].append(text_metrics.ngram_repetition(text))
            if grounding is not None:
                for key, value in grounding.measure(sentences).items():
                    scores[system][key].append(value)

    report = Report("generation metrics", metrics)
    for system in systems:
        for metric, values in scores[system].items():
            report.add(system, metric, values)
    reference_lengths = [len(e.reference) for e in examples]
    report.settings = {
        "examples": len(examples),
        "baseline_k": k if k is not None else "sentences of each reference",
        "mean_reference_sentences": sum(reference_lengths) / len(reference_lengths),
        "random_seed": seed,
        "tokenization": "rouge-score DefaultTokenizer (lower-cased alphanumeric words); "
                        "ROUGE-L with Porter stemming",
    }
    return report


class _Grounding:
    """One example's source as vectors: the oracle's picks, and how an output stands to them."""

    def __init__(self, example: Example, vectors: Any, encode: Encode):
        self.example, self.encode = example, encode
        self.source = torch.as_tensor(vectors).float()
        self.support = SourceSupport(example.source, self.source)
        self.reference_nearest = self._nearest(example.reference)

    def _nearest(self, sentences: list[str]) -> list[int]:
        if not sentences:
            return []
        vectors = F.normalize(torch.as_tensor(self.encode(sentences)).float(), dim=-1)
        return (vectors @ F.normalize(self.source, dim=-1).T).argmax(dim=-1).tolist()

    def oracle(self) -> list[str]:
        """Each reference sentence's nearest source sentence, once, in source order."""
        return [self.example.source[i] for i in sorted(set(self.reference_nearest))]

    def measure(self, sentences: list[str]) -> dict[str, float]:
        if not sentences:
            return {"unsupported": 0.0, "coverage": 0.0, "sentences": 0.0}
        vectors = self.support.vectors_of(sentences, self.encode)
        verdicts = [self.support.check(text, vector) for text, vector in zip(sentences, vectors)]
        covered = {v.segment for v in verdicts}
        hits = sum(i in covered for i in self.reference_nearest)
        return {"unsupported": sum(not v.supported for v in verdicts) / len(verdicts),
                "coverage": hits / len(self.reference_nearest),
                "sentences": float(len(sentences))}
