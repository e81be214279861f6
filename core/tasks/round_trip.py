"""The ``round_trip`` task: how well does a space say back my text? Every line of a text file
is encoded, decoded and re-encoded; one JSON object per line and an outcome line.

With a multilingual decoder (SONAR's), ``target_langs`` decodes into each of them: English in
and French out is then a translation through the concept alone. One sentence per input line
(strict UTF-8); blank lines are skipped and counted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from lcm.data.readers import read_documents
from lcm.fields import ComponentSection, bounded, component, path
from lcm.interfaces import RunContext, Task
from lcm.outputs import write_text_atomically


@dataclass
class RoundTripConfig:
    input: str = path(must_exist=True, help="text file, one sentence per line")
    output: str = path(output=True, help=(
        "JSONL file: per line and language {source, decoded, cosine, target_lang}"))
    encoder: ComponentSection = component("encoder", default="minilm")
    decoder: ComponentSection = component("decoder", default="learned")
    target_langs: list[Optional[str]] = field(default_factory=lambda: [None])
    """Languages to decode into, for a decoder that takes one (SONAR's NLLB codes, e.g.
    fra_Latn); null: the decoder's own. One output line per sentence and language."""
    batch_size: int = bounded(64, ge=1, help="sentences encoded and decoded per call")


class RoundTrip(Task):
    name = "round_trip"
    description = "Encode each line of a text file, decode it, re-encode it: BLEU, exact, cosine."
    Config = RoundTripConfig

    def run(self, recipe: RoundTripConfig, context: RunContext) -> dict[str, Any]:
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        import sacrebleu

        encoder, decoder = recipe.encoder.create(), recipe.decoder.create()
        skipped: dict[str, int] = {}

        def on_skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        sentences = [doc.text.strip() for doc in read_documents(recipe.input, "txt",
                                                                on_skip=on_skip)]
        rows: list[dict[str, Any]] = []
        empty = 0
        batches = [sentences[start:start + recipe.batch_size]
                   for start in range(0, len(sentences), recipe.batch_size)]
        vectors = [encoder.encode(batch) for batch in batches]  # a broken encoder stops here
        with context.console.progress("round_trip", len(sentences) * len(recipe.target_langs),
                                      "sentences") as progress:
            for language in recipe.target_langs:
                for chunk, encoded in zip(batches, vectors):
                    decoded = decoder.decode(encoded, language)
                    cosines = _round_trip_cosines(encoder, decoded, encoded)
                    empty += sum(not text.strip() for text in decoded)
                    rows += [{"source": source, "decoded": text, "cosine": round(float(c), 4),
                              **({"target_lang": language} if language else {})}
                             for source, text, c in zip(chunk, decoded, cosines)]
                    progress.update(len(chunk))
        write_text_atomically(Path(recipe.output), "".join(
            json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        per_language = []
        for language in recipe.target_langs:
            mine = [r for r in rows if r.get("target_lang") == language]
            bleu = sacrebleu.corpus_bleu([r["decoded"] for r in mine],
                                         [[r["source"] for r in mine]]).score if mine else 0.0
            exact = sum(r["decoded"].strip() == r["source"] for r in mine) / max(len(mine), 1)
            cosine = sum(r["cosine"] for r in mine) / max(len(mine), 1)
            per_language.append({"target_lang": language, "bleu": round(bleu, 2),
                                 "exact_match": round(exact, 4), "cosine": round(cosine, 4)})
        if empty:
            context.console.note(f"{empty} decoded sentence(s) were empty: round-trip cosine 0",
                                 key="empty decoding")
        outcome = {"sentences": len(sentences), "outputs": len(rows), "skipped": skipped,
                   "languages": per_language, "output": str(recipe.output)}
        figures = "; ".join(
            (f"{row['target_lang']}: " if row["target_lang"] else "")
            + f"BLEU {row['bleu']:.1f} against the source, exact match {row['exact_match']:.1%}, "
              f"round-trip cosine {row['cosine']:.3f}" for row in per_language)
        skips = ", ".join(f"{n} {reason}" for reason, n in skipped.items()) or "none"
        context.console.outcome(f"round-tripped {len(sentences)} sentences: {figures}; "
                                f"skipped: {skips}; -> {recipe.output}",
                                {"task": "round_trip", **outcome})
        return outcome


def _round_trip_cosines(encoder: Any, decoded: list[str], vectors: Any) -> Any:
    """Each decoded text re-encoded against its source's vector; 0 for an empty decoding (an
    encoder may refuse to encode nothing, and nothing was said back)."""
    cosines = torch.zeros(len(decoded))
    said = [i for i, text in enumerate(decoded) if text.strip()]
    if said:
        again = encoder.encode([decoded[i] for i in said]).float()
        cosines[said] = torch.nn.functional.cosine_similarity(again, vectors[said].float(), dim=-1)
    return cosines
