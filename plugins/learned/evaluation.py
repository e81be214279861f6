"""How well a decoder writes back held-out sentences from their (noised) vectors.

Per noise level: token negative log-likelihood (teacher-forced), and for the greedy decoding
corpus BLEU (sacrebleu), exact match (case-insensitive) and, when an encoder of the space is
given, the round-trip cosine (the decoded text re-encoded, against the clean vector).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from lcm.plugins.learned.corpus import SentencePairs, add_noise
from lcm.plugins.learned.model import load_model

EVALUATION_SEED = 1234


def text_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and exact match (case and surrounding space ignored)."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import sacrebleu

    bleu = sacrebleu.corpus_bleu(list(predictions), [list(references)]).score
    exact = sum(p.strip().lower() == r.strip().lower() for p, r in zip(predictions, references))
    return {"bleu": bleu, "exact_match": exact / max(len(references), 1)}


def round_trip_cosines(encoder: Any, texts: Sequence[str], targets: torch.Tensor) -> torch.Tensor:
    """Cosine of each re-encoded text to its target vector (N,)."""
    encoded = encoder.encode(list(texts)).float()
    return torch.nn.functional.cosine_similarity(encoded, targets.float(), dim=-1)


def noised(vectors: torch.Tensor, level: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(EVALUATION_SEED)
    return add_noise(vectors, torch.full((len(vectors),), float(level)), generator)


@torch.no_grad()
def held_out_nll(model: Any, vectors: torch.Tensor, sentences: Sequence[str],
                 batch_size: int = 32) -> float:
    """Teacher-forced negative log-likelihood per token of ``sentences`` given ``vectors``:
    a smoother measure of a decoder's progress than the BLEU of a few greedy decodings."""
    nll = tokens = 0.0
    for start in range(0, len(vectors), batch_size):
        batch = model.tokenize(sentences[start:start + batch_size])
        total, count = model.token_nll(vectors[start:start + batch_size], batch["input_ids"],
                                       batch["attention_mask"])
        nll, tokens = nll + float(total.sum()), tokens + float(count.sum())
    return nll / max(tokens, 1)


def score_decoder(model_dir: str, shards: str, sentences: int, noise_levels: Sequence[float],
                  encoder: Any = None) -> list[dict[str, float]]:
    """One row of scores per noise level on the first ``sentences`` of ``shards``."""
    model, truecaser = load_model(model_dir)
    return score_pairs(model, truecaser, SentencePairs.read(shards, sentences), noise_levels, encoder)


def score_pairs(model: Any, truecaser: Any, pairs: SentencePairs, noise_levels: Sequence[float],
                encoder: Any = None, batch_size: int = 32) -> list[dict[str, float]]:
    """Scores of ``model`` (in eval mode) on ``pairs``, one row per noise level."""
    clean = torch.from_numpy(pairs.vectors)
    rows = []
    for level in noise_levels:
        vectors = noised(clean, level)
        decoded: list[str] = []
        with torch.no_grad():
            for start in range(0, len(vectors), batch_size):
                chunk = vectors[start:start + batch_size]
                decoded += [truecaser.apply(c[0]) for c in model.generate(chunk, beam_size=1)]
        row = {"noise": float(level),
               "nll_per_token": held_out_nll(model, vectors, pairs.sentences, batch_size),
               **text_scores(decoded, pairs.sentences)}
        if encoder is not None:
            row["round_trip_cosine"] = float(round_trip_cosines(encoder, decoded, clean).mean())
        rows.append(row)
    return rows


def report_lines(rows: list[dict[str, float]]) -> list[str]:
    """One printable line per noise level."""
    lines = []
    for row in rows:
        extra = (f", round-trip cosine {row['round_trip_cosine']:.3f}"
                 if "round_trip_cosine" in row else "")
        lines.append(f"held-out, noise {row['noise']:.2f}: {row['nll_per_token']:.3f} nats/token, "
                     f"greedy BLEU {row['bleu']:.1f}, exact match {row['exact_match']:.2f}{extra}")
    return lines
