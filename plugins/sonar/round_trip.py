"""The ``round_trip`` task: sentences → SONAR vectors → text, usually in another language.

It shows what the concept space keeps: with the real SONAR weights, English in and French out
is a translation through the 1024-d vector alone. One sentence per input line (strict UTF-8);
blank lines are skipped and counted. Writes JSONL: ``{"source", "output", "target_lang"}``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcm.data.readers import read_documents
from lcm.fields import component, path
from lcm.hookspecs import hookimpl
from lcm.interfaces import RunContext, Task

from .languages import language_problem

log = logging.getLogger(__name__)


@dataclass
class RoundTripConfig:
    input: str = path(must_exist=True, help="text file, one sentence per line")
    output: str = path(output=True, help="JSONL file of source and decoded sentences")
    encoder: Any = component("encoder", default="sonar_text")
    decoder: Any = component("decoder", default="sonar_text")
    target_langs: list[str] = field(default_factory=lambda: ["fra_Latn"])
    """NLLB codes to decode into; one output line per sentence and language."""
    batch_size: int = 256
    """Sentences encoded and decoded per call."""

    def problems(self) -> list[str]:
        found = (language_problem(lang, f"target_langs[{i}]")
                 for i, lang in enumerate(self.target_langs))
        return [problem for problem in found if problem]


class RoundTrip(Task):
    name = "round_trip"
    description = "Encode sentences to SONAR vectors and decode them back in other languages."
    Config = RoundTripConfig

    def run(self, recipe: RoundTripConfig, context: RunContext) -> dict[str, Any]:
        encoder = recipe.encoder.create()
        decoder = recipe.decoder.create()
        skipped: dict[str, int] = {}

        def on_skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        sentences = [doc.text.strip() for doc in read_documents(recipe.input, "txt", on_skip=on_skip)]
        output = Path(recipe.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with output.open("w", encoding="utf-8") as out:
            for start in range(0, len(sentences), recipe.batch_size):
                chunk = sentences[start:start + recipe.batch_size]
                vectors = encoder.encode(chunk)
                for lang in recipe.target_langs:
                    for source, text in zip(chunk, decoder.decode(vectors, lang)):
                        out.write(json.dumps({"source": source, "output": text, "target_lang": lang},
                                             ensure_ascii=False) + "\n")
                        written += 1
        summary = {"sentences": len(sentences), "outputs": written, "skipped": skipped,
                   "output": str(output)}
        log.warning("round_trip: %d sentence(s) → %d output line(s) in %s; skipped: %s",
                    len(sentences), written, output, skipped or "none")
        return summary


@hookimpl
def register_tasks(register) -> None:
    register(RoundTrip)
