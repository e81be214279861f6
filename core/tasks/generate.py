"""The ``generate`` task: continue documents with a trained model and decode the new concepts.

Each document is segmented like ``prepare`` does it; its first ``prompt_concepts`` sentences are
the prompt. This task reads and writes; the concept pipeline (``lcm.pipeline``) encodes,
continues and decodes. The decoder sees the prompt first (``observe``: a retrieval decoder adds those
sentences to its bank). Continuations stop on the end sentence, on repetition or at
``max_new_concepts`` (see ``lcm.generate.loop``); each is printed and written as one JSONL row.
"""
from __future__ import annotations

from lcm.json_output import dumps
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from rich.markup import escape

from lcm.data.document_input import DocumentInput
from lcm.data.readers import count_records
from lcm.fields import ComponentSection, choice, component, path
from lcm.interfaces import RunContext, Task
from lcm.iterutils import batched
from lcm.outputs import write_text_atomically
from lcm.pipeline.options import PADDING_SIDES, ContinuationOptions, continuation_options
from lcm.pipeline.pipeline import ConceptPipeline
from lcm.pipeline.selector import decoding_record, describe_decoding
from lcm.pipeline.sources import NO_SENTENCES
from lcm.ui import current
from lcm.ui.words import format_counts


@dataclass
class GenerateConfig(DocumentInput, ContinuationOptions):
    model: str = path(must_exist=True, space_source=True, help="checkpoint directory")
    input: str = path(must_exist=True, help="documents: .txt (one per line), .jsonl or .parquet")
    output: Optional[str] = path(None, output=True, help="JSONL of the continuations")
    encoder: ComponentSection = component("encoder", default="minilm")
    decoder: ComponentSection = component("decoder", default="retrieval")
    prompt_concepts: Optional[int] = None
    """Use only the first K sentences of each document as the prompt (None: all of them)."""
    max_new_concepts: int = 16
    """Most concepts generated per document."""
    batch_size: int = 8
    """Documents continued together."""
    padding_side: str = choice("left", PADDING_SIDES, help="where shorter prompts are padded")


@dataclass
class _Document:
    id: str
    prompt: list[str]


class Generate(Task):
    name = "generate"
    description = "Continue documents concept by concept with a trained model; decode and write JSONL."
    Config = GenerateConfig

    def run(self, recipe: GenerateConfig, context: RunContext) -> list[dict[str, Any]]:
        started = time.perf_counter()
        pipeline = ConceptPipeline(
            recipe.model, context.registry, recipe.encoder, recipe.decoder,
            continuation_options(recipe, recipe.max_new_concepts, recipe.padding_side),
            device=recipe.device)

        skipped: Counter[str] = Counter()
        stops: Counter[str] = Counter()
        rows: list[dict[str, Any]] = []
        total = min(count_records(recipe.input, recipe.format), recipe.limit or 1 << 62)
        terminal = context.console
        with terminal.progress("generate", total=total, unit="documents") as bar:
            for batch in batched(_documents(recipe, skipped, bar), recipe.batch_size):
                for row in _continue_batch(batch, pipeline):
                    rows.append(row)
                    stops[row["stop_reason"]] += 1
                bar.update(len(batch))
        if recipe.output:
            write_jsonl(Path(recipe.output), rows)
        if recipe.show:
            terminal.show_some(rows, lambda row: terminal.print(escape(format_continuation(row))),
                               "continuations", recipe.output)
        seconds = time.perf_counter() - started
        generated = sum(len(r["generated"]) for r in rows)
        read = len(rows) + sum(skipped.values())
        terminal.outcome(
            f"continued {len(rows)} of {read} documents with {generated} concepts in "
            f"{seconds:.1f} s (stops: {format_counts(stops)}; skipped: {format_counts(skipped)})"
            + (f"; wrote {recipe.output}" if recipe.output else ""),
            {"task": "generate", "documents_read": read, "continued": len(rows),
             "concepts": generated, "seconds": round(seconds, 1), "stops": dict(stops),
             "skipped": dict(skipped), "output": recipe.output})
        return rows


def _documents(recipe: GenerateConfig, skipped: Counter, bar: Any) -> Iterator[_Document]:
    """Prompts of the input documents; every document left out is counted by reason."""

    def skip(reason: str) -> None:
        skipped[reason] += 1
        bar.update(1)

    for doc in recipe.documents(recipe.input, on_skip=skip):
        sentences = recipe.sentences(doc.text)
        if not sentences:
            skip(NO_SENTENCES)
            continue
        yield _Document(doc.id, sentences[: recipe.prompt_concepts])


def _continue_batch(batch: list[_Document], pipeline: Any) -> list[dict[str, Any]]:
    """Encode the prompts of ``batch`` in one call, continue them together, and decode each
    document's continuation with a decoder of its own, which observed that document's prompt
    alone (a retrieval decoder's bank never holds another document's sentences)."""
    vectors = pipeline.encode([s for doc in batch for s in doc.prompt], batch_size=None)
    owns, start = [], 0
    for doc in batch:
        owns.append(vectors[start: start + len(doc.prompt)])
        start += len(doc.prompt)
    rows = []
    for doc, own, continuation in zip(batch, owns, pipeline.continuations(owns)):
        decoded = pipeline.decode(continuation.concepts, (doc.prompt, own))
        rows.append({"id": doc.id, "prompt": doc.prompt, "generated": [d.text for d in decoded],
                     "decoding": [decoding_record(d) for d in decoded],
                     "stop_reason": continuation.stop_reason})
    return rows


def format_continuation(row: dict[str, Any]) -> str:
    """A continuation as a reader wants it: the prompt, then each new sentence marked."""
    lines = [f"── {row['id']} ──", *(f"   {s}" for s in row["prompt"])]
    lines += [f" + {s}  [{describe_decoding(how)}]" for s, how in zip(row["generated"], row["decoding"])]
    lines.append(f"   [{len(row['generated'])} new, stopped: {row['stop_reason']}]")
    return "\n".join(lines)


def write_jsonl(target: Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line, written atomically."""
    note = current().note
    write_text_atomically(target, "".join(dumps(row, note, ensure_ascii=False) + "\n"
                                          for row in rows))
