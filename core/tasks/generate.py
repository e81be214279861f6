"""The ``generate`` task: continue documents with a trained model and decode the new concepts.

Each document is segmented like ``prepare`` does it; its first ``prompt_concepts`` sentences are
the prompt. The decoder sees the prompt first (``observe``: a retrieval decoder adds those
sentences to its bank). Continuations stop on the end sentence, on repetition or at
``max_new_concepts`` (see ``lcm.generate.loop``); each is printed and written as one JSONL row.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from lcm.config import choice, component, path
from lcm.errors import ConceptSpaceMismatchError
from lcm.interfaces import Task
from lcm.iterutils import batched
from lcm.outputs import write_text_atomically
from lcm.tasks.document_input import DocumentInput

NO_SENTENCES = "no sentences after segmentation"


@dataclass
class StopConfig:
    end_sentence: Optional[str] = "End of text."
    """Its encoding is the end concept; None disables this rule."""
    end_threshold: float = 0.9
    """Stop when a new concept's cosine to the end concept exceeds this."""
    repetition_threshold: Optional[float] = 0.9
    """Stop when a new concept's cosine to the previous one exceeds this; None disables."""


@dataclass
class GenerateConfig(DocumentInput):
    model: str = path(must_exist=True, space_source=True, help="checkpoint directory")
    input: str = path(must_exist=True, help="documents: .txt (one per line), .jsonl or .parquet")
    output: Optional[str] = path(None, output=True, help="JSONL of the continuations")
    encoder: Any = component("encoder", default="minilm")
    decoder: Any = component("decoder", default="retrieval")
    prompt_concepts: Optional[int] = None
    """Use only the first K sentences of each document as the prompt (None: all of them)."""
    max_new_concepts: int = 16
    """Most concepts generated per document."""
    stop: StopConfig = field(default_factory=StopConfig)
    batch_size: int = 8
    """Documents continued together."""
    padding_side: str = choice("left", ("left", "right"), help="where shorter prompts are padded")
    seed: int = 0
    """Seeds heads that sample, so a run is reproducible."""
    device: str = "cpu"
    language: Optional[str] = None
    """Output language for decoders of multilingual spaces (None: the decoder's default)."""
    show: bool = True
    """Print each continuation."""


@dataclass
class _Document:
    id: str
    prompt: list[str]


class Generate(Task):
    name = "generate"
    description = "Continue documents concept by concept with a trained model; decode and write JSONL."
    Config = GenerateConfig

    def run(self, recipe: GenerateConfig) -> list[dict[str, Any]]:
        from tqdm import tqdm

        from lcm.data.readers import count_records
        from lcm.model.checkpoint import load_checkpoint
        from lcm.registry import get_registry

        started = time.perf_counter()
        loaded = load_checkpoint(recipe.model, device=recipe.device)
        registry = get_registry()
        encoder = registry.create("encoder", recipe.encoder)
        decoder = registry.create("decoder", recipe.decoder)
        check_spaces(loaded.space, encoder, decoder)
        rules = stop_rules(recipe.stop, recipe.max_new_concepts, encoder)

        skipped: Counter[str] = Counter()
        stops: Counter[str] = Counter()
        rows: list[dict[str, Any]] = []
        total = min(count_records(recipe.input, recipe.format), recipe.limit or 1 << 62)
        with tqdm(total=total, unit="doc", desc="generate", dynamic_ncols=True) as bar:
            for batch in batched(_documents(recipe, skipped, bar), recipe.batch_size):
                for row in _continue_batch(batch, recipe, loaded, encoder, decoder, rules):
                    rows.append(row)
                    stops[row["stop_reason"]] += 1
                    if recipe.show:
                        bar.write(format_continuation(row))
                bar.update(len(batch))
        if recipe.output:
            write_jsonl(Path(recipe.output), rows)
        seconds = time.perf_counter() - started
        generated = sum(len(r["generated"]) for r in rows)
        print(f"continued {len(rows)} documents with {generated} concepts in {seconds:.1f} s "
              f"(stops: {format_counts(stops)}; skipped: {format_counts(skipped)})"
              + (f"; wrote {recipe.output}" if recipe.output else ""))
        return rows


def check_spaces(space: Any, encoder: Any, decoder: Any) -> None:
    """Refuse an encoder or decoder of another concept space than the model's."""
    for component_ in (encoder, decoder):
        theirs = component_.concept_space(component_.config)
        if theirs is not None and theirs != space:
            raise ConceptSpaceMismatchError(
                f"the model was trained in {space}, but {component_.kind} "
                f"{component_.name!r} works in {theirs}")


def stop_rules(stop: StopConfig, max_new_concepts: int, text_encoder: Any) -> Any:
    """The loop's StopRules for ``stop``; the end sentence is encoded with ``text_encoder``."""
    from lcm.generate.loop import StopRules

    rules = StopRules(max_new_concepts, None, stop.end_threshold, stop.repetition_threshold)
    if stop.end_sentence:
        rules.end_concept = text_encoder.encode([stop.end_sentence])[0].float()
    return rules


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


def _continue_batch(batch: list[_Document], recipe: GenerateConfig, loaded: Any, encoder: Any,
                    decoder: Any, rules: Any) -> list[dict[str, Any]]:
    """Encode the prompts of ``batch`` in one call, continue them together, decode."""
    import torch

    from lcm.generate.loop import generate

    vectors = encoder.encode([s for doc in batch for s in doc.prompt]).float()
    prompts, start = [], 0
    for doc in batch:
        own = vectors[start: start + len(doc.prompt)]
        decoder.observe(doc.prompt, own)
        prompts.append(loaded.normalizer.normalize(own))
        start += len(doc.prompt)
    continuations = generate(loaded.model, prompts, rules, loaded.normalizer.denormalize,
                             seed=recipe.seed, padding_side=recipe.padding_side)
    new = [c.concepts for c in continuations]
    sentences = decoder.decode(torch.cat(new), recipe.language) if sum(len(c) for c in new) else []
    rows, start = [], 0
    for doc, continuation in zip(batch, continuations):
        n = len(continuation.concepts)
        rows.append({"id": doc.id, "prompt": doc.prompt, "generated": sentences[start:start + n],
                     "stop_reason": continuation.stop_reason})
        start += n
    return rows


def format_continuation(row: dict[str, Any]) -> str:
    """A continuation as a reader wants it: the prompt, then each new sentence marked."""
    lines = [f"── {row['id']} ──", *(f"   {s}" for s in row["prompt"])]
    lines += [f" + {s}" for s in row["generated"]]
    lines.append(f"   [{len(row['generated'])} new, stopped: {row['stop_reason']}]")
    return "\n".join(lines)


def write_jsonl(target: Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line, written atomically."""
    write_text_atomically(target, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def format_counts(counter: Counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counter.items())) or "none"
