"""The ``prepare`` task: text documents → capped sentences → concept vectors → webdataset shards.

The input (a file, a folder or a glob) is cut into pieces of ``docs_per_shard`` records, each
becoming one shard (``lcm.data.inputs``). Under ``torchrun``/``deepspeed`` (or with ``rank=``
and ``world_size=`` for a job array) each rank encodes every ``world_size``-th piece on its own
device; the set is written resumably (``lcm.data.shard_set``): a rerun of the same recipe keeps
the complete shards and encodes the rest, and the last rank to finish writes the manifest.

Sentences of consecutive documents of a piece are gathered into batches of ``batch_size`` for
the encoder (small documents would otherwise waste most of each forward pass), then split back
per document and written with their fp16 vectors and metadata. Every document left out is
counted by reason in the manifest and the outcome line.

With a ``target_field`` (.jsonl input) each record is a source/target pair (a document and its
summary): its shard document holds the source sentences, then the target sentences, with
``meta["source_len"]``; the framing sentences of ``lcm.data.instruction`` (end sentence, source
suffix) are encoded once into ``instruction.json`` beside the shards, for the ``supervised``
training style.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lcm.data.document_input import DocumentInput
from lcm.data.inputs import input_files, plan_pieces, rank_pieces
from lcm.data.instruction import (
    DEFAULT_END_SENTENCE,
    SOURCE_LENGTH_KEY,
    InstructionFormat,
    encode_framing,
)
from lcm.data.ranks import resolve_ranks, use_local_device, wait_for_all_ranks
from lcm.data.readers import RawDocument, detect_format, read_documents
from lcm.data.segment import cap_sentences
from lcm.data.shard_set import PartialShardSet
from lcm.data.shards import Document, Manifest
from lcm.errors import InputFileError, UserError
from lcm.fields import ComponentSection, bounded, component, path
from lcm.interfaces import RunContext, Task
from lcm.outputs import Output, check_output, overwriting
from lcm.ui.terminal import progress

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
    input: str = path(must_exist=True, help="documents: a .txt (one per line), .jsonl or "
                                            ".parquet file, a folder of them, or a glob")
    output: str = path(output="dir", help="directory for the shards and manifest")
    encoder: ComponentSection = component("encoder", default="minilm")
    target_field: Optional[str] = None
    """The .jsonl field holding each document's target (e.g. its summary): shards of pairs."""
    sentences_field: Optional[str] = None
    """The .jsonl field / Parquet column holding each document's sentences as a list (the
    reference implementation's layout: ``text_sentences``); None: segment the text."""
    instruction: InstructionOptions = field(default_factory=InstructionOptions)
    min_sentences: int = 1
    """Documents with fewer sentences are skipped (and counted)."""
    docs_per_shard: int = bounded(1000, ge=1)
    """Records per shard: each input file is cut into pieces of this many, one shard each
    (skipped records are counted, not written, so a shard may hold fewer documents)."""
    batch_size: int = 256
    """Sentences gathered (across documents) per encoder call."""
    rank: Optional[int] = bounded(None, ge=0)
    """This job's rank in a job array (with ``world_size``); under torchrun or the deepspeed
    launcher leave both unset: the launcher's RANK and WORLD_SIZE are used."""
    world_size: Optional[int] = bounded(None, ge=1)
    """How many jobs of the array share the input (with ``rank``)."""


class Prepare(Task):
    name = "prepare"
    description = "Segment and encode text documents into webdataset shards of concept vectors."
    Config = PrepareConfig

    @staticmethod
    def outputs(recipe: PrepareConfig) -> list[Output]:
        """None to lock: the ranks of a job share the shard folder, and a killed run must be
        resumable (a lock would outlive it). Each rank checks the folder before any work; the
        pieces commit atomically, and one process moves the complete set into place."""
        return []

    def run(self, recipe: PrepareConfig, context: RunContext) -> Any:
        started = time.perf_counter()
        ranks = resolve_ranks(recipe.rank, recipe.world_size)
        output = Path(recipe.output)
        check_output(Output(output, True), overwriting())
        files = input_files(recipe.input)
        _check_formats(files, recipe)
        pieces = plan_pieces(files, recipe.format, recipe.docs_per_shard, recipe.limit)
        shard_set = PartialShardSet(output, _fingerprint(recipe, files))
        kept = [r for r in map(shard_set.committed, pieces) if r is not None]
        mine = [p for p in rank_pieces(pieces, ranks.rank, ranks.world_size)
                if shard_set.committed(p) is None]
        use_local_device(ranks)
        encoder = recipe.encoder.create()
        space = encoder.concept_space(encoder.config)

        def add_framing(directory: Path, manifest: Manifest) -> None:
            if recipe.target_field:
                _save_framing(recipe.instruction, encoder, directory, manifest.documents)

        with shard_set.claimed_rank(ranks.rank, ranks.world_size):
            encoded = _encode(mine, recipe, encoder, shard_set, space,
                              f"prepare {ranks.label}" if ranks.world_size > 1 else "prepare",
                              show=not ranks.launched or ranks.rank == 0)
            finished = shard_set.finish(pieces, space, encoder.name, add_framing)
        seconds = time.perf_counter() - started
        if finished is not None:
            manifest = finished.manifest
            context.console.outcome(
                closing_line(manifest, output, seconds, finished.split, recipe.segmenter.max_chars,
                             kept=len(kept), kept_sentences=sum(r["sentences"] for r in kept)),
                {"task": "prepare", "documents": manifest.documents,
                 "sentences": manifest.sentences, "shards": len(manifest.shards),
                 "seconds": round(seconds, 1), "skipped": manifest.skipped,
                 "sentences_split": finished.split, "kept_shards": len(kept),
                 "output": str(output)})
        else:
            context.console.outcome(
                f"{ranks.label}: encoded {len(mine)} shards ({encoded} sentences) in "
                f"{seconds:.1f} s; the last rank to finish writes the manifest",
                {"task": "prepare", "rank": ranks.rank, "shards": len(mine),
                 "sentences": encoded, "seconds": round(seconds, 1)})
        if ranks.launched:
            wait_for_all_ranks()
            return Manifest.read(output)
        return finished.manifest if finished is not None else None


def _check_formats(files: list[Path], recipe: PrepareConfig) -> None:
    """Refuse, before any work, input files the recipe's fields cannot read."""
    for file in files:
        fmt = detect_format(file, recipe.format)
        if recipe.target_field and fmt != "jsonl":
            raise UserError(f"target_field needs .jsonl input (pairs), not {file}")
        if recipe.sentences_field and fmt == "txt":
            raise InputFileError(file, f"sentences_field {recipe.sentences_field!r} needs "
                                       f".jsonl or .parquet input (a list of sentences per record)")


def _fingerprint(recipe: PrepareConfig, files: list[Path]) -> dict[str, Any]:
    """What the shards depend on: a partial set written with another value is not resumed.
    The number of ranks is not part of it (the pieces do not depend on it), nor is the
    encoder's device (it places the computation, not its result)."""
    encoder = {k: v for k, v in recipe.encoder.as_dict().items() if k != "device"}
    inputs = [{"path": str(f.resolve()), "bytes": f.stat().st_size, "sha256": _digest(f)}
              for f in files]  # content, not mtime: an edit that kept size and mtime counts
    reading = {name: getattr(recipe, name) for name in (
        "format", "text_field", "id_field", "sentences_field", "target_field", "limit",
        "min_sentences", "docs_per_shard")}
    return {"encoder": encoder, "segmenter": dataclasses.asdict(recipe.segmenter),
            "input": inputs, "instruction": dataclasses.asdict(recipe.instruction), **reading}


def _digest(file: Path) -> str:
    with file.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _encode(pieces: list[Any], recipe: PrepareConfig, encoder: Any, shard_set: Any,
            space: Any, label: str, show: bool) -> int:
    """Encode and commit each piece, one shard each; the sentences written."""
    written = 0
    with progress(label, sum(p.records for p in pieces), "documents", shown=show) as bar:
        for piece in pieces:
            with shard_set.writer(piece, space) as writer:

                def skip(reason: str) -> None:
                    writer.skip(reason)
                    bar.update(1)

                keys, pending = _ShardKeys(str(piece.file)), _Pending(written=written)
                for doc in read_documents(piece.file, recipe.format, recipe.text_field,
                                          recipe.id_field, on_skip=skip, limit=piece.records,
                                          start=piece.start,
                                          sentences_field=recipe.sentences_field):
                    sentences, cut = _sentences_of(doc, recipe)
                    writer.split += cut
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
                written = pending.flush(encoder, writer).written
                bar.set(sentences=written)  # what the summary says
    return written


def _sentences_of(doc: RawDocument, recipe: PrepareConfig) -> tuple[list[str], int]:
    """The document's capped sentences (given by the input, or segmented from its text), and
    how many sentences the cap split."""
    if doc.sentences is None:
        return recipe.capped_sentences(doc.text)
    return cap_sentences(doc.sentences, recipe.segmenter.max_chars)


def _as_pair(doc: RawDocument, source: list[str], recipe: PrepareConfig
             ) -> tuple[RawDocument | None, list[str]]:
    """The document with its target's sentences after the source's; None without a target."""
    meta = dict(doc.meta)
    target = meta.pop(recipe.target_field, None)
    sentences = recipe.sentences(target) if isinstance(target, str) else []
    if not sentences:
        return None, source
    return doc._replace(meta={**meta, SOURCE_LENGTH_KEY: len(source)}), source + sentences


def _save_framing(options: InstructionOptions, encoder: Any, output: Path, pairs: int) -> None:
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
    document's meta. Two documents with one key in a shard would merge into one sample: refused
    (keys of different shards never meet, so each piece of the input checks its own)."""

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


def closing_line(manifest: Any, output: Path, seconds: float, split: int = 0,
                 max_chars: int = 0, kept: int = 0, kept_sentences: int = 0) -> str:
    """One line: what was written, how fast (the sentences this run encoded), what was
    skipped and why, how many shards an earlier run had written (kept), and how many long
    sentences the cap split (each became several concepts)."""
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(manifest.skipped.items())) or "none"
    encoded = manifest.sentences - kept_sentences
    rate = encoded / seconds if seconds > 0 else 0.0
    return (f"wrote {manifest.documents} documents, {manifest.sentences} sentences in "
            f"{len(manifest.shards)} shards to {output} ({seconds:.1f} s, {rate:.0f} sentences/s); "
            f"skipped: {skipped}"
            + (f"; kept {kept} complete shards of an earlier run" if kept else "")
            + (f"; {split} sentences longer than {max_chars} characters split "
               f"(segmenter.max_chars)" if split else ""))
