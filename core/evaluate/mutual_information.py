"""MI: how much a predicted sentence depends on its context, measured by a causal language model.

As in the reference code (``PrefixContrastiveSentencePerplexityScorer.score_next_sentences``):
the decoded prediction is scored by a token-level LM once alone and once after the true
preceding sentences (at most ``max_context_sentences``, joined by spaces); the MI of one
prediction is the drop of its negative log-likelihood (nats) thanks to the context, divided by
its number of scored tokens. The sentence is wrapped in newlines, and its first token (the
opening newline, which has nothing before it when scored alone) is scored in neither pass.
A sentence that has no token left to score gets NaN.

The LM is any causal model transformers can load from a local directory (the reference used
GPT-2 medium); nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from lcm.errors import InputFileError

SENTENCE_WRAP = "\n"
CONTEXT_SEPARATOR = " "


class ContextMutualInformation:
    """Scores (context sentences, sentence) pairs with a causal LM loaded lazily."""

    def __init__(self, model_path: str | Path, device: str = "cpu", max_context_sentences: int = 10):
        self.model_path = Path(model_path)
        self.device = device
        self.max_context_sentences = max_context_sentences
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
            self._model = AutoModelForCausalLM.from_pretrained(str(self.model_path)).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise InputFileError(self.model_path, f"cannot load a causal language model for MI: "
                                                  f"{str(exc).splitlines()[0]}") from None

    def score(self, contexts: Sequence[Sequence[str]], sentences: Sequence[str]) -> list[float]:
        """Per-token pointwise MI of each sentence with its context (nats per token)."""
        if self._model is None:
            self._load()
        return [self._score_one(list(context), sentence) for context, sentence in zip(contexts, sentences)]

    def _score_one(self, context: list[str], sentence: str) -> float:
        tokenize = lambda text: self._tokenizer(text, add_special_tokens=False)["input_ids"]
        suffix = tokenize(SENTENCE_WRAP + sentence + SENTENCE_WRAP)
        limit = getattr(self._model.config, "max_position_embeddings", None) or 1024
        suffix = suffix[:limit]
        prefix = tokenize(CONTEXT_SEPARATOR.join(context[-self.max_context_sentences:]))
        prefix = prefix[max(0, len(prefix) - (limit - len(suffix))):] if limit > len(suffix) else []
        scored = len(suffix) - 1
        if scored < 1:
            return float("nan")
        with torch.no_grad():
            alone = self._nll(suffix, start=1)
            with_context = self._nll(prefix + suffix, start=len(prefix) + 1)
        return (alone - with_context) / scored

    def _nll(self, ids: list[int], start: int) -> float:
        """Summed negative log-likelihood of ``ids[start:]`` given everything before them."""
        tokens = torch.tensor([ids], device=self.device)
        logits = self._model(tokens).logits[0, :-1].float()  # (L-1, V): position i predicts i+1
        losses = F.cross_entropy(logits, tokens[0, 1:], reduction="none")
        return float(losses[start - 1:].sum())
