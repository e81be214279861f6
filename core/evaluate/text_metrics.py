"""Metrics of generated text: ROUGE-L against a reference, OVL-3 and REP-4 (the paper's §5).

All three read text through the tokenizer of the ``rouge-score`` package (lower-cased, anything
but letters and digits is a word break), so the n-gram metrics count the same words ROUGE does.

- ROUGE-L: the F-measure of the longest common subsequence, Porter-stemmed, from
  ``rouge_score.rouge_scorer`` (summary-level ``rougeLsum`` is not used).
- OVL-3: the share of the output's 3-gram occurrences that also occur in the source; how much
  the output copies. N-grams are taken within sentences, on both sides, so an output made of
  source sentences scores exactly 1.0 whatever their order.
- REP-4: ``1 - distinct / total`` over the output's 4-gram occurrences; 0 when no 4-gram
  repeats, close to 1 when one phrase loops.
An output too short to hold one n-gram scores 0 on OVL-3 / REP-4 (nothing copied, nothing
repeated), the convention of the reference code's ``max(1, count)`` denominators.
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Sequence

OVERLAP_N = 3
REPETITION_N = 4


@lru_cache(maxsize=1)
def _rouge_l_scorer():
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


@lru_cache(maxsize=1)
def _word_tokenizer():
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from rouge_score import tokenizers

    return tokenizers.DefaultTokenizer(use_stemmer=False)


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` as ROUGE sees them (before stemming)."""
    return _word_tokenizer().tokenize(text)


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """Every n-gram occurrence of ``tokens``, in order."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure of ``prediction`` against ``reference`` (stemmed)."""
    return _rouge_l_scorer().score(reference, prediction)["rougeL"].fmeasure


def sentence_ngrams(sentences: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The n-gram occurrences of each sentence, none spanning two sentences."""
    return [gram for sentence in sentences for gram in ngrams(words(sentence), n)]


def ngram_overlap(output: Sequence[str], source: Sequence[str], n: int = OVERLAP_N) -> float:
    """Share of the n-gram occurrences of ``output``'s sentences found in ``source``'s (OVL-n)."""
    produced = sentence_ngrams(output, n)
    if not produced:
        return 0.0
    available = set(sentence_ngrams(source, n))
    return sum(gram in available for gram in produced) / len(produced)


def ngram_repetition(output: str, n: int = REPETITION_N) -> float:
    """``1 - distinct / total`` n-grams of ``output`` (REP-n)."""
    produced = ngrams(words(output), n)
    if not produced:
        return 0.0
    return 1.0 - len(Counter(produced)) / len(produced)
