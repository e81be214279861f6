"""The ``prepare`` task: text documents → capped sentences → concept vectors → webdataset shards.

Sentences of consecutive documents are gathered into batches of ``batch_size`` for the encoder
(small documents would otherwise waste most of each forward pass), then split back per document
and written with their fp16 vectors and metadata. Every document left out is counted by reason
in the manifest and the summary line.

With a ``target_field`` (.jsonl input) each record is a source/target pair (a document and its
summary): its shard document holds the source sentences, then the target sentences, with
``meta["source_len"]``; the framing sentences of ``lcm.data.instruction`` (end sentence, source
suffix) are encoded once into ``instruction.json`` beside the shards, for the ``supervised``
training style.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lcm.fields import component, path
from lcm.data.instruction import DEFAULT_END_SENTENCE
from lcm.data.readers import RawDocument, count_records, detect_format
from lcm.errors import InputFileError, UserError
from lcm.interfaces import RunContext, Task
from lcm.tasks.document_input import DocumentInput

TOO_FEW_SENTENCES = "fewer sentences than min_sentences"
NO_TARGET = "no target text"


@dataclass
class InstructionOptions:
    """How pairs are framed (see ``lcm.data.instruction``); used only with ``target_field``."""

    source_suffix: Optional[str] = None
    """A separator sentence between source and target (e.g. "Summary:"); None: none."""
    end_sentence: str = DEFAULT_END_SENTENCE
    """Ends every target; generation stops when its concept comes."""


@dataclass
class PrepareConfig(DocumentInput):
    input: str = path(must_exist=True, help="documents: .txt (one per line), .jsonl or .parquet")
    output: str = path(output="dir", help="directory for the shards and manifest")
    encoder: Any = component("encoder", default="minilm")
    target_field: Optional[str] = None
    """The .jsonl field holding each document's target (e.g. its summary): shards of pairs."""
    instruction: InstructionOptions = field(default_factory=InstructionOptions)
    min_sentences: int = 1
    """Documents with fewer sentences are skipped (and counted)."""
    docs_per_shard: int = 1000
    batch_size: int = 256
    """Sentences gathered (across documents) per encoder call."""


class Prepare(Task):
    name = "prepare"
    description = "Segment and encode text documents into webdataset shards of concept vectors."
    Config = PrepareConfig

    def run(self, recipe: PrepareConfig, context: RunContext) -> Any:
        from lcm.data.shards import Manifest, ShardWriter

        if recipe.target_field and detect_format(recipe.input, recipe.format) != "jsonl":
            raise UserError(f"target_field needs .jsonl input (pairs), not {recipe.input}")
        encoder = recipe.encoder.create()
        output = Path(recipe.output)
        started = time.perf_counter()
        records = count_records(recipe.input, recipe.format)
        keys = _ShardKeys(recipe.input)
        with ShardWriter(output, encoder.concept_space(encoder.config), encoder.name,
                         recipe.docs_per_shard) as writer, \
                context.console.progress("prepare", min(records, recipe.limit or records),
                                         "documents") as bar:

            def skip(reason: str) -> None:
                writer.skip(reason)
                bar.update(1)

            pending, split = _Pending(), 0
            for doc in recipe.documents(recipe.input, on_skip=skip):
                sentences, cut = recipe.capped_sentences(doc.text)
                split += cut
                if len(sentences) < recipe.min_sentences:
                    skip(TOO_FEW_SENTENCES)
                    continue
                if recipe.target_field:
                    doc, sentences = _as_pair(doc, sentences, recipe)
                    if doc is None:
                        skip(NO_TARGET)
                        continue
                pending.add(keys.key(doc), doc, sentences)
                bar.update(1)
                if pending.sentences >= recipe.batch_size:
                    pending = pending.flush(encoder, writer)
                    bar.set(sentences=pending.written)
            bar.set(sentences=pending.flush(encoder, writer).written)  # what the summary says
        manifest = Manifest.read(output)
        if recipe.target_field:
            _save_framing(recipe.instruction, encoder, output, manifest.documents)
        seconds = time.perf_counter() - started
        context.console.summary(summary_line(manifest, output, seconds, split,
                                             recipe.segmenter.max_chars),
                                {"task": "prepare", "documents": manifest.documents,
                                 "sentences": manifest.sentences, "shards": len(manifest.shards),
                                 "seconds": round(seconds, 1), "skipped": manifest.skipped,
                                 "sentences_split": split, "output": str(output)})
        return manifest


def _as_pair(doc: RawDocument, source: list[str], recipe: PrepareConfig
             ) -> tuple[RawDocument | None, list[str]]:
    """The document with its target's sentences after the source's; None without a target."""
    from lcm.data.instruction import SOURCE_LENGTH_KEY

    meta = dict(doc.meta)
    target = meta.pop(recipe.target_field, None)
    sentences = recipe.sentences(target) if isinstance(target, str) else []
    if not sentences:
        return None, source
    return doc._replace(meta={**meta, SOURCE_LENGTH_KEY: len(source)}), source + sentences


def _save_framing(options: InstructionOptions, encoder: Any, output: Path, pairs: int) -> None:
    from lcm.data.instruction import InstructionFormat, encode_framing

    framing = encode_framing(InstructionFormat(options.source_suffix, options.end_sentence), encoder)
    framing.save(output, pairs)


@dataclass
class _Pending:
    """Segmented documents waiting for one batched encoder call."""

    documents: list[tuple[str, RawDocument, list[str]]] = field(default_factory=list)
    sentences: int = 0
    written: int = 0
    """Sentences written by earlier batches (for the progress bar)."""

    def add(self, key: str, doc: RawDocument, sentences: list[str]) -> None:
        self.documents.append((key, doc, sentences))
        self.sentences += len(sentences)

    def flush(self, encoder: Any, writer: Any) -> "_Pending":
        """Encode every pending sentence in one call, write each document; the next batch."""
        from lcm.data.shards import Document

        if self.documents:
            vectors = encoder.encode([s for _, _, sentences in self.documents for s in sentences])
            vectors = vectors.detach().cpu().numpy()  # the writer stores fp16, refusing overflow
            start = 0
            for key, doc, sentences in self.documents:
                end = start + len(sentences)
                meta = {**doc.meta, "id": doc.id}
                writer.write(Document(key, sentences, vectors[start:end], meta))
                start = end
        return _Pending(written=self.written + self.sentences)


class _ShardKeys:
    """Webdataset keys for document ids: a key may not hold a dot (webdataset splits the file
    extension at the first one), so other characters become "_"; the original id stays in the
    document's meta. Two documents with one key would merge into one sample: refused."""

    _UNSAFE = re.compile(r"[^\w-]+")

    def __init__(self, source: str):
        self.source = source
        self.seen: set[str] = set()

    def key(self, doc: RawDocument) -> str:
        key = self._UNSAFE.sub("_", doc.id) or "_"
        if key in self.seen:
            where = doc.meta.get("line", doc.meta.get("row", "?"))
            raise InputFileError(f"{self.source}:{where}",
                                 f"duplicate document id {doc.id!r} (shard key {key!r})")
        self.seen.add(key)
        return key


def summary_line(manifest: Any, output: Path, seconds: float, split: int = 0,
                 max_chars: int = 0) -> str:
    """One line: what was written, how fast, what was skipped and why, and how many long
    sentences the cap split (each became several concepts)."""
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(manifest.skipped.items())) or "none"
    rate = manifest.sentences / seconds if seconds > 0 else 0.0
    return (f"wrote {manifest.documents} documents, {manifest.sentences} sentences in "
            f"{len(manifest.shards)} shards to {output} ({seconds:.1f} s, {rate:.0f} sentences/s); "
            f"skipped: {skipped}"
            + (f"; {split} sentences longer than {max_chars} characters split "
               f"(segmenter.max_chars)" if split else ""))
