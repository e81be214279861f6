"""Webdataset shards of encoded documents, and their manifest.

One sample per document: ``sentences.json`` (list of str), ``vectors.npy`` (float16
``[n_sentences, dim]``) and ``meta.json``. ``manifest.json`` beside the shards counts documents
and sentences per shard and records what was skipped and why; ``concept_space.json`` records
the space. Reading checks that every document has one vector per sentence and refuses a shard
set that does not (the reference code silently dropped such rows).
"""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from lcm.errors import DataIntegrityError, InputFileError
from lcm.interfaces import ConceptSpace
from lcm.outputs import replace_directory, staging_directory
from lcm.spaces import write_space

MANIFEST = "manifest.json"
SHARD_PATTERN = "shard-%06d.tar"


@dataclass
class Document:
    """One encoded document."""

    id: str
    sentences: list[str]
    vectors: np.ndarray  # [n, dim], float16 on disk
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    """What a shard directory holds."""

    space: ConceptSpace
    encoder: str
    documents: int
    sentences: int
    shards: list[dict[str, Any]]
    skipped: dict[str, int]

    @classmethod
    def read(cls, directory: str | Path) -> "Manifest":
        directory = Path(directory)
        path = directory / MANIFEST
        if not path.is_file():
            raise InputFileError(directory, f"not a shard directory (no {MANIFEST})")
        try:
            data = json.loads(path.read_text())
            return cls(ConceptSpace.from_record(data["space"]), data["encoder"], int(data["documents"]),
                       int(data["sentences"]), list(data["shards"]), dict(data.get("skipped", {})))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFileError(path, f"malformed manifest: {exc}") from None

    def write(self, directory: Path) -> None:
        """The manifest and ``concept_space.json`` into ``directory``."""
        data = {"space": self.space.record(), "encoder": self.encoder,
                "documents": self.documents, "sentences": self.sentences,
                "shards": self.shards, "skipped": self.skipped}
        (directory / MANIFEST).write_text(json.dumps(data, indent=2))
        write_space(directory, self.space)


def encode_sample(doc: Document, space: ConceptSpace) -> dict[str, Any]:
    """One document as a webdataset sample, its vectors checked (one per sentence, of the
    space's dimension, finite once stored as fp16)."""
    with np.errstate(over="ignore"):  # an overflow becomes inf, refused below
        vectors = np.asarray(doc.vectors, dtype=np.float16)
    if vectors.shape != (len(doc.sentences), space.dim):
        raise DataIntegrityError(
            f"document {doc.id}: {vectors.shape[0]} vectors of dim {vectors.shape[-1]} for "
            f"{len(doc.sentences)} sentences in space {space}")
    problem = nonfinite_problem(vectors)  # fp16 overflows to inf beyond 65504
    if problem:
        raise DataIntegrityError(f"document {doc.id}: the encoder gave {problem}")
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    return {"__key__": doc.id, "sentences.json": json.dumps(doc.sentences).encode(),
            "vectors.npy": buffer.getvalue(), "meta.json": json.dumps(doc.meta).encode()}


def no_documents(directory: Path, skipped: dict[str, int]) -> DataIntegrityError:
    """The refusal of a shard set without a document, with what was skipped and why."""
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
    return DataIntegrityError(f"{directory}: no documents to write (skipped: "
                              f"{reasons or 'none'}); nothing was written")


class ShardWriter:
    """Writes documents into numbered tar shards and the manifest on close.

    Everything goes to a temporary sibling folder that replaces ``directory`` only once complete,
    so a failed or killed run leaves the previous shard set (or nothing), never a part of one.
    """

    def __init__(self, directory: str | Path, space: ConceptSpace, encoder: str,
                 docs_per_shard: int = 1000):
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        import webdataset as wds

        self.directory = Path(directory)
        self._staging = staging_directory(self.directory)
        self.space, self.encoder = space, encoder
        self.skipped: dict[str, int] = {}
        self._shards: list[dict[str, Any]] = []
        self._writer = wds.ShardWriter(str(self._staging / SHARD_PATTERN), maxcount=docs_per_shard,
                                       verbose=0)
        self._documents = 0
        self._sentences = 0

    def write(self, doc: Document) -> None:
        self._writer.write(encode_sample(doc, self.space))
        shard = Path(self._writer.fname).name
        if not self._shards or self._shards[-1]["path"] != shard:
            self._shards.append({"path": shard, "documents": 0, "sentences": 0})
        self._shards[-1]["documents"] += 1
        self._shards[-1]["sentences"] += len(doc.sentences)
        self._documents += 1
        self._sentences += len(doc.sentences)

    def skip(self, reason: str, count: int = 1) -> None:
        """Count documents left out, by reason, for the manifest and the outcome line."""
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def close(self) -> Manifest:
        """Write the manifest and swap the complete shard set into place."""
        self._writer.close()
        if not self._documents:
            self._discard()
            raise no_documents(self.directory, self.skipped)
        manifest = Manifest(self.space, self.encoder, self._documents, self._sentences,
                            self._shards, self.skipped)
        manifest.write(self._staging)
        replace_directory(self._staging, self.directory)
        return manifest

    def _discard(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._writer.close()
            self._discard()


def nonfinite_problem(vectors: np.ndarray) -> str | None:
    """Where ``vectors`` hold NaN or inf (count and first row), or None: never train on them."""
    finite = np.isfinite(vectors)
    if finite.all():
        return None
    bad_rows = np.flatnonzero(~finite.all(axis=tuple(range(1, vectors.ndim))))
    return (f"{int((~finite).sum())} non-finite values (NaN/inf) in {len(bad_rows)} vector(s), "
            f"first at row {int(bad_rows[0])}")


def shard_paths(directory: str | Path) -> list[Path]:
    """The shard files a manifest lists, each checked to exist inside the shard folder."""
    directory = Path(directory)
    paths = [directory / s["path"] for s in Manifest.read(directory).shards]
    inside = directory.resolve()
    for p in paths:
        if not p.resolve().is_relative_to(inside):
            listed = str(p.relative_to(directory))
            raise InputFileError(directory / MANIFEST, f"shard path {listed!r} leaves the shard "
                                                       f"folder; refusing it")
        if not p.is_file():
            raise InputFileError(p, "shard listed in the manifest is missing")
    return paths


def decode_sample(sample: dict[str, Any], source: str, dim: int | None = None) -> Document:
    """Turn one raw webdataset sample into a Document, checking its integrity (and, given the
    manifest's ``dim``, the vectors' dimension)."""
    key = sample.get("__key__", "?")
    try:
        sentences = json.loads(sample["sentences.json"])
        vectors = np.load(io.BytesIO(sample["vectors.npy"]))
        meta = json.loads(sample.get("meta.json", b"{}"))
    except (KeyError, ValueError) as exc:
        raise DataIntegrityError(f"{source}: document {key} is malformed: {exc}") from None
    if vectors.ndim != 2 or vectors.shape[0] != len(sentences):
        raise DataIntegrityError(
            f"{source}: document {key} has {vectors.shape[0] if vectors.ndim else 0} vectors for "
            f"{len(sentences)} sentences; refusing the shard set rather than dropping rows")
    if dim is not None and vectors.shape[1] != dim:
        raise DataIntegrityError(f"{source}: document {key} has vectors of dimension "
                                 f"{vectors.shape[1]}, but the manifest's space has {dim}")
    problem = nonfinite_problem(vectors)
    if problem:
        raise DataIntegrityError(f"{source}: document {key} has {problem}; refusing the shard set")
    return Document(str(key), list(sentences), vectors, meta)


def iter_documents(directory: str | Path, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
    """Documents of a shard directory, in order; shard ``i`` goes to rank ``i % world_size``."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import webdataset as wds

    dim = Manifest.read(directory).space.dim
    paths = shard_paths(directory)[rank::world_size]
    for p in paths:
        dataset = wds.WebDataset(str(p), shardshuffle=False, empty_check=False,
                                 nodesplitter=None, workersplitter=None)
        samples = iter(dataset)
        while True:
            try:
                sample = next(samples)
            except StopIteration:
                break
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                first = exc.args[0] if exc.args else None  # webdataset adds (stream, url)
                text = first if isinstance(first, str) else str(exc)
                reason = (text.strip().splitlines() or [type(exc).__name__])[0]
                raise DataIntegrityError(f"{p}: corrupt or truncated shard ({reason})") from None
            yield decode_sample(sample, str(p), dim)


def load_vectors(directory: str | Path, limit: int | None = None) -> np.ndarray:
    """All (or the first ``limit``) sentence vectors of a shard directory, as float32."""
    chunks, total = [], 0
    for doc in iter_documents(directory):
        chunks.append(doc.vectors.astype(np.float32))
        total += len(doc.vectors)
        if limit is not None and total >= limit:
            break
    if not chunks:
        raise DataIntegrityError(f"{directory}: the shard set holds no vectors")
    out = np.concatenate(chunks)
    return out[:limit] if limit is not None else out
