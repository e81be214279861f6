"""Training batches from concept shards: wrap documents into windows, shuffle, pad, mask.

Supervised style (shards of source/target pairs, with their ``Framing``): each pair is one
window laid out by ``lcm.data.instruction.build_pair`` (source, [suffix], target, end) with a
target mask; it is never wrapped mid-target. A pair longer than ``max_concepts`` keeps the first
source sentences that fit (counted as ``sources_cut``); one whose target alone does not fit is
skipped (counted with ``windows_skipped``).

The order of batches is a pure function of (seed, epoch, rank, worker count), so a resumed run
sees exactly the batches an uninterrupted run would. Resuming re-reads the current epoch and
skips the batches already consumed: cheap at the scale of this project, and it needs no
reader state beyond two integers (a very large corpus would want seekable shards instead).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lcm.data.instruction import SOURCE_LENGTH_KEY, Framing, build_pair
from lcm.data.normalizer import RobustScaler
from lcm.data.shards import iter_documents, shard_paths
from lcm.errors import DataIntegrityError, LcmError, UserError

MIN_WINDOW = 2
"""A window needs a context concept and a next concept to give the model anything to learn."""


@dataclass
class Batch:
    """Padded, normalised windows of one micro-batch."""

    concepts: torch.Tensor  # (B, T, D) float32, zero where padded
    mask: torch.Tensor  # (B, T) bool, True on real concepts
    documents_read: int  # documents the reader finished since the previous batch
    windows_skipped: int  # windows too short to train on, since the previous batch
    target_mask: torch.Tensor | None = None  # (B, T) bool, the concepts to learn (supervised)
    sources_cut: int = 0  # pairs whose source was cut to fit, since the previous batch
    sentences: list[list[str]] | None = None
    """Each window's sentences, one per concept (framing sentences included), for heads that
    read the text (``HeadModule.reads_sentences``); None when no head asked for them."""

    @property
    def num_concepts(self) -> int:
        return int(self.mask.sum())


@dataclass
class DataPosition:
    """Where the stream of batches stands: the epoch and micro-batches consumed in it."""

    epoch: int = 0
    batches: int = 0


@dataclass
class _Window:
    """One training sequence before padding."""

    vectors: np.ndarray  # (L, D) raw concepts
    learned: np.ndarray | None = None  # (L,) bool: the concepts to learn (supervised pairs)
    sentences: list[str] | None = None  # (L,) texts, when the stream carries them


@dataclass
class _ReaderFailure:
    """An error raised in a DataLoader worker, carried to the main process as a value.

    DataLoader re-raises worker errors as a multi-line traceback (or a RuntimeError when the
    error's constructor takes two arguments); this keeps the one-line message and its kind.
    """

    message: str
    user_error: bool


def wrap_document(items: Any, max_concepts: int) -> list[Any]:
    """Split a document's vectors (or its sentences, alike) into consecutive windows of at
    most ``max_concepts``."""
    return [items[i:i + max_concepts] for i in range(0, len(items), max_concepts)]


def pair_window(vectors: np.ndarray, source_length: int, framing: Framing,
                max_concepts: int) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """One pair as ``(sequence (L, D), learned (L,), source_cut)``; None if the target, its
    framing and one source concept cannot fit in ``max_concepts``."""
    source, target = vectors[:source_length], vectors[source_length:]
    framing_length = len(target) + 1 + (framing.suffix is not None)
    room = max_concepts - framing_length
    if room < 1 or len(source) < 1 or len(target) < 1:
        return None
    end = framing.end.astype(vectors.dtype)
    suffix = None if framing.suffix is None else framing.suffix.astype(vectors.dtype)
    sequence, learned = build_pair(source[:room], target, end, suffix)
    return sequence, learned, len(source) > room


def pair_sentences(doc: Any, length: int, framing: Framing) -> list[str]:
    """The texts of a pair laid out as ``pair_window`` lays out its ``length`` concepts: the kept
    source sentences, the suffix sentence, the target sentences, the end sentence."""
    source_length = _source_length(doc)
    target = doc.sentences[source_length:]
    suffix = [framing.format.source_suffix] if framing.suffix is not None else []
    kept = length - len(target) - 1 - len(suffix)
    return doc.sentences[:kept] + suffix + target + [framing.format.end_sentence]


def shuffled(items: Iterable[Any], buffer_size: int, rng: random.Random) -> Iterator[Any]:
    """A shuffle buffer: streams ``items`` in a random order that depends only on ``rng``."""
    buffer: list[Any] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= buffer_size:
            index = rng.randrange(len(buffer))
            buffer[index], buffer[-1] = buffer[-1], buffer[index]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer


def pad_masks(masks: list[np.ndarray], length: int) -> torch.Tensor:
    """(B, length) bool: each (L,) mask, right-padded with False."""
    padded = torch.zeros(len(masks), length, dtype=torch.bool)
    for row, values in enumerate(masks):
        padded[row, :len(values)] = torch.from_numpy(values)
    return padded


def pad_windows(windows: list[np.ndarray], normalizer: RobustScaler) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise windows and pad them to the longest: ``(B, T, D)`` concepts and ``(B, T)`` mask."""
    longest = max(len(w) for w in windows)
    dim = windows[0].shape[1]
    concepts = torch.zeros(len(windows), longest, dim)
    mask = torch.zeros(len(windows), longest, dtype=torch.bool)
    for row, window in enumerate(windows):
        values = normalizer.normalize(window.astype(np.float32))
        concepts[row, :len(window)] = torch.from_numpy(values)
        mask[row, :len(window)] = True
    return concepts, mask


class ConceptWindows(IterableDataset):
    """One epoch of batches for one rank; each DataLoader worker reads its own part.

    Shards are split over ``world_size * num_workers`` parts when there are enough of them;
    otherwise every part reads all shards and keeps every ``parts``-th document, so a small
    shard set never leaves a rank or worker without data.
    """

    def __init__(self, shards: str | Path, normalizer: RobustScaler, max_concepts: int,
                 batch_size: int, shuffle_buffer: int, seed: int, epoch: int, rank: int = 0,
                 world_size: int = 1, framing: Framing | None = None, with_text: bool = False):
        super().__init__()
        self.framing = framing  # None: pre-training windows; else supervised pairs
        self.with_text = with_text
        self.shards, self.normalizer = Path(shards), normalizer
        self.max_concepts, self.batch_size = max_concepts, batch_size
        self.shuffle_buffer, self.seed, self.epoch = max(1, shuffle_buffer), seed, epoch
        self.rank, self.world_size = rank, world_size
        self.num_shards = len(shard_paths(self.shards))

    def __iter__(self) -> Iterator[Batch | _ReaderFailure]:
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        part, parts = self.rank * workers + worker_id, self.world_size * workers
        try:
            yield from self._batches(part, parts)
        except LcmError as exc:
            if worker is None:
                raise
            yield _ReaderFailure(str(exc), isinstance(exc, UserError))

    def _documents(self, part: int, parts: int) -> Iterator[Any]:
        if self.num_shards >= parts:
            yield from iter_documents(self.shards, part, parts)
        else:
            for index, doc in enumerate(iter_documents(self.shards)):
                if index % parts == part:
                    yield doc

    def _batches(self, part: int, parts: int) -> Iterator[Batch]:
        counts = {"documents": 0, "skipped": 0, "cut": 0}

        def windows() -> Iterator[_Window]:
            for doc in self._documents(part, parts):
                counts["documents"] += 1
                if self.framing is not None:
                    pair = pair_window(doc.vectors, _source_length(doc), self.framing,
                                       self.max_concepts)
                    if pair is None:
                        counts["skipped"] += 1
                        continue
                    sequence, learned, cut = pair
                    counts["cut"] += cut
                    texts = pair_sentences(doc, len(sequence), self.framing) if self.with_text else None
                    yield _Window(sequence, learned, texts)
                    continue
                texts = wrap_document(doc.sentences, self.max_concepts) if self.with_text else None
                for index, window in enumerate(wrap_document(doc.vectors, self.max_concepts)):
                    if len(window) >= MIN_WINDOW:
                        yield _Window(window, None, texts[index] if texts else None)
                    else:
                        counts["skipped"] += 1

        rng = random.Random(f"{self.seed}/{self.epoch}/{part}/{parts}")
        group: list[_Window] = []
        for window in shuffled(windows(), self.shuffle_buffer, rng):
            group.append(window)
            if len(group) == self.batch_size:
                yield self._batch(group, counts)
                group = []
        if group:
            yield self._batch(group, counts)
        # The shuffle buffer drains only after the reader is exhausted, so the last batch
        # carries the final counts: nothing is read after it.

    def _batch(self, group: list[_Window], counts: dict[str, int]) -> Batch:
        target_mask = None
        if self.framing is not None:
            learned = [w.learned for w in group]
            target_mask = pad_masks(learned, max(len(m) for m in learned))
        concepts, mask = pad_windows([w.vectors for w in group], self.normalizer)
        sentences = [w.sentences for w in group] if self.with_text else None
        batch = Batch(concepts, mask, counts["documents"], counts["skipped"], target_mask,
                      counts["cut"], sentences)
        counts["documents"] = counts["skipped"] = counts["cut"] = 0
        return batch


class BatchStream:
    """Endless micro-batches for one rank, epoch after epoch, from a saved position.

    ``position`` always names the next batch to hand out, so saving it with a checkpoint and
    passing it back here continues the exact sequence.
    """

    def __init__(self, shards: str | Path, normalizer: RobustScaler, *, max_concepts: int,
                 batch_size: int, shuffle_buffer: int, num_workers: int, seed: int,
                 rank: int = 0, world_size: int = 1, position: DataPosition | None = None,
                 framing: Framing | None = None, with_text: bool = False):
        self.shards, self.normalizer, self.framing = Path(shards), normalizer, framing
        self.with_text = with_text
        self.max_concepts, self.batch_size, self.shuffle_buffer = max_concepts, batch_size, shuffle_buffer
        self.num_workers, self.seed, self.rank, self.world_size = num_workers, seed, rank, world_size
        self.position = position or DataPosition()
        self.documents_read = 0
        self.windows_skipped = 0
        self.sources_cut = 0

    def epoch_loader(self, epoch: int) -> DataLoader:
        dataset = ConceptWindows(self.shards, self.normalizer, self.max_concepts, self.batch_size,
                                 self.shuffle_buffer, self.seed, epoch, self.rank, self.world_size,
                                 self.framing, self.with_text)
        return DataLoader(dataset, batch_size=None, num_workers=self.num_workers,
                          collate_fn=_as_is)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            skip, served = self.position.batches, 0
            for item in self.epoch_loader(self.position.epoch):
                if isinstance(item, _ReaderFailure):
                    raise (DataIntegrityError if item.user_error else LcmError)(item.message)
                served += 1
                if served <= skip:
                    continue
                self.documents_read += item.documents_read
                self.windows_skipped += item.windows_skipped
                self.sources_cut += item.sources_cut
                self.position.batches += 1
                yield item
            if served == 0:
                raise DataIntegrityError(
                    f"{self.shards}: rank {self.rank} got no window of at least {MIN_WINDOW} "
                    f"concepts; every document is too short to predict a next concept")
            if served < skip:
                raise DataIntegrityError(
                    f"{self.shards}: the checkpoint's data position (epoch {self.position.epoch}, "
                    f"batch {skip}) is past the end of the epoch ({served} batches); the shards "
                    f"changed since the checkpoint was written")
            self.position = DataPosition(self.position.epoch + 1, 0)


def _source_length(doc: Any) -> int:
    """How many of a pair document's sentences are its source, checked."""
    length = doc.meta.get(SOURCE_LENGTH_KEY)
    if not isinstance(length, int) or not 0 < length < len(doc.vectors):
        raise DataIntegrityError(
            f"document {doc.id} is not a source/target pair (meta {SOURCE_LENGTH_KEY}={length!r} "
            f"for {len(doc.vectors)} sentences); prepare pairs with a target_field")
    return length


def _as_is(item: Any) -> Any:
    """DataLoader's collate for items the dataset batched itself."""
    return item
