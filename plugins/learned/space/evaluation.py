"""How well a learned space says back held-out sentences, and how near it stays to its base.

Per noise level on the new vectors: the token NLL (teacher-forced), greedy decoding's BLEU and
exact match, the share of the source's numbers and mid-sentence capitalised words that the
output keeps, the round-trip cosine in the new space (decoded text re-encoded by the trained
encoder) and, with the base encoder, by the base space too (comparable with a decoder of the
base space); and, once, the anchor cosine (new vector against the base encoder's vector of the
same sentence).
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import torch

from lcm.plugins.learned.corpus import SentencePairs
from lcm.plugins.learned.evaluation import held_out_nll, noised, text_scores

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NAME = re.compile(r"(?<=\s)[A-Z][\w'-]+")


def facts(sentence: str) -> list[str]:
    """The numbers and the capitalised words after the first word of ``sentence``."""
    return _NUMBER.findall(sentence) + _NAME.findall(sentence)


def facts_kept(outputs: Sequence[str], sources: Sequence[str]) -> float:
    """Of all the sources' numbers and names, the share that appear in their outputs."""
    total = kept = 0
    for output, source in zip(outputs, sources):
        wanted = facts(source)
        total += len(wanted)
        kept += sum(fact in output for fact in wanted)
    return kept / total if total else 1.0


@torch.no_grad()
def encode_sentences(model: Any, sentences: Sequence[str], max_tokens: int = 128,
                     batch_size: int = 64) -> torch.Tensor:
    """The trained encoder's vectors of ``sentences`` (model in eval mode)."""
    tokenizer = model.decoder.tokenizer
    chunks = []
    for start in range(0, len(sentences), batch_size):
        batch = tokenizer(list(sentences[start:start + batch_size]), padding=True, truncation=True,
                          max_length=max_tokens, return_tensors="pt")
        chunks.append(model.encode(batch["input_ids"], batch["attention_mask"]))
    return torch.cat(chunks)


@torch.no_grad()
def score_space(model: Any, truecaser: Any, pairs: SentencePairs, noise_levels: Sequence[float],
                base_encoder: Any = None, batch_size: int = 32) -> list[dict[str, float]]:
    """One row of scores per noise level; ``pairs`` hold the base encoder's vectors."""
    base = torch.from_numpy(pairs.vectors)
    clean = encode_sentences(model, pairs.sentences)
    anchor = float(torch.nn.functional.cosine_similarity(clean, base, dim=-1).mean())
    rows = []
    for level in noise_levels:
        vectors = noised(clean, level)
        decoded = [truecaser.apply(candidates[0])
                   for start in range(0, len(vectors), batch_size)
                   for candidates in model.decoder.generate(vectors[start:start + batch_size],
                                                            beam_size=1)]
        again = encode_sentences(model, decoded)
        row = {"noise": float(level),
               "nll_per_token": held_out_nll(model.decoder, vectors, pairs.sentences, batch_size),
               **text_scores(decoded, pairs.sentences),
               "facts_kept": facts_kept(decoded, pairs.sentences),
               "round_trip_cosine": float(torch.nn.functional.cosine_similarity(
                   again, clean, dim=-1).mean()),
               "anchor_cosine": anchor}
        if base_encoder is not None:
            row["base_round_trip_cosine"] = float(torch.nn.functional.cosine_similarity(
                base_encoder.encode(decoded).float(), base, dim=-1).mean())
        rows.append(row)
    return rows


def report_lines(rows: list[dict[str, float]]) -> list[str]:
    """One printable line per noise level."""
    lines = []
    for row in rows:
        base = (f", base-space round trip {row['base_round_trip_cosine']:.3f}"
                if "base_round_trip_cosine" in row else "")
        lines.append(f"held-out, noise {row['noise']:.2f}: {row['nll_per_token']:.3f} nats/token, "
                     f"greedy BLEU {row['bleu']:.1f}, exact "
                     f"match {row['exact_match']:.2f}, numbers and names kept "
                     f"{row['facts_kept']:.2f}, round-trip cosine {row['round_trip_cosine']:.3f}"
                     f"{base}; anchor cosine {row['anchor_cosine']:.3f}")
    return lines
