"""A shard set written piece by piece, by any number of processes, that a rerun resumes.

While it is written the set lives in a hidden sibling of its output folder,
``.<output>.partial``, which survives a kill. Each piece of the input (``lcm.data.inputs``)
becomes one shard, written under a temporary name and committed by an atomic rename, followed
by its own small manifest in ``progress/``: a piece is done exactly when that file exists, so a
rerun keeps every complete shard and encodes only the rest. The recipe the set is written with
is recorded first (``recipe.json``); a rerun with another recipe is refused rather than mixed in.

Whoever commits the last piece finishes the set: it checks that every expected shard is there,
sums the counts (skips by reason) into ``manifest.json`` and moves the folder into place. The
result is the shard set a single process writes, which training reads unchanged.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from lcm.data.inputs import Piece
from lcm.data.shards import SHARD_PATTERN, Document, Manifest, encode_sample, no_documents
from lcm.errors import DataIntegrityError, InputFileError, UserError
from lcm.interfaces import ConceptSpace
from lcm.outputs import (MARKER, STAGING, alive, mark, replace_directory, take_for_replacing,
                         write_text_atomically)

PROGRESS = "progress"
RECIPE = "recipe.json"
_TEMPORARY = ".tmp"


class Finished(NamedTuple):
    """The complete set's manifest, and how many sentences the cap split in all."""

    manifest: Manifest
    split: int


def partial_directory(output: Path) -> Path:
    """Where the set of ``output`` is written until it is complete."""
    return output.with_name(f".{output.name}.partial")


class PieceWriter:
    """One piece's shard: documents into a temporary tar, counts of what was written and
    skipped, committed as a whole or not at all."""

    def __init__(self, directory: Path, piece: Piece, space: ConceptSpace):
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        import webdataset as wds

        self.directory, self.piece, self.space = directory, piece, space
        self.name = SHARD_PATTERN % piece.index
        unique = f"{socket.gethostname()}-{os.getpid()}"
        self._temporary = directory / f".{self.name}.{unique}{_TEMPORARY}"
        self._tar = wds.TarWriter(str(self._temporary))
        self.documents = self.sentences = self.split = 0
        self.skipped: dict[str, int] = {}
        self.ids: list[str] = []

    def write(self, doc: Document) -> None:
        self._tar.write(encode_sample(doc, self.space))
        self.ids.append(doc.id)
        self.documents += 1
        self.sentences += len(doc.sentences)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def commit(self) -> None:
        """The shard into place, then its manifest: the piece is done only after both."""
        self._tar.close()
        if self.documents:
            os.replace(self._temporary, self.directory / self.name)
        else:
            self._temporary.unlink()
        record = {"piece": self.piece.index, "file": str(self.piece.file),
                  "start": self.piece.start, "stop": self.piece.stop,
                  "path": self.name if self.documents else None, "documents": self.documents,
                  "sentences": self.sentences, "skipped": self.skipped, "split": self.split,
                  "ids": self.ids}
        write_text_atomically(self.directory / PROGRESS / f"{self.name}.json", json.dumps(record))

    def abandon(self) -> None:
        self._tar.close()
        self._temporary.unlink(missing_ok=True)


def _holds_foreign_files(directory: Path) -> bool:
    """Whether ``directory`` holds anything lcm did not put there. The first writer marks the
    folder before writing anything into it (``mark``), so an unmarked folder is lcm's only while
    empty: another rank may see it between its creation and its marker."""
    if not directory.is_dir() or (directory / MARKER).is_file():
        return False
    return any(directory.iterdir())


class PartialShardSet:
    """The set of ``output`` while it is written (see the module's docstring)."""

    def __init__(self, output: Path, recipe: dict[str, Any]):
        self.output = output
        self.directory = partial_directory(output)
        self._adopt_killed_finish()
        if _holds_foreign_files(self.directory):
            raise UserError(f"{self.directory} holds files lcm did not write; prepare keeps its "
                            f"unfinished set there: move that folder away")
        mark(self.directory)  # lcm's, so an overwrite may replace it
        (self.directory / PROGRESS).mkdir(exist_ok=True)
        self._record_recipe(recipe)

    def _adopt_killed_finish(self) -> None:
        """A run killed while finishing left the set in a staging sibling (``finish`` renames
        the partial set there first): take it back as the partial set, so nothing is encoded
        again. Only a staging folder of lcm's whose process is gone is taken."""
        if self.directory.exists():
            return
        for staging in sorted(self.output.parent.glob(f".{self.output.name}{STAGING}*")):
            owner = staging.name.rpartition("-")[2]
            host = staging.name[len(f".{self.output.name}{STAGING}"):].rpartition("-")[0]
            if (staging / MARKER).is_file() and (staging / PROGRESS).is_dir() and owner.isdigit() \
                    and host == socket.gethostname() and not alive(int(owner)):
                os.rename(staging, self.directory)
                return

    @contextlib.contextmanager
    def claimed_rank(self, rank: int, world_size: int) -> Iterator[None]:
        """Hold rank ``rank``'s share of the set for the block: a second run of the same recipe
        as the same rank is refused at its start (the first does that work), in one line."""
        lock = self.directory / PROGRESS / f".rank-{rank}-of-{world_size}.lock"
        owner = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                host, _, pid = lock.read_text().partition(" ")
                if host == socket.gethostname() and pid.isdigit() and not alive(int(pid)):
                    lock.unlink(missing_ok=True)  # a killed run's: take it over
                    continue
                raise UserError(f"{self.output}: another prepare of this recipe is writing "
                                f"{self.directory} as rank {rank} (pid {pid} on {host}); wait "
                                f"for it to finish, or stop it") from None
        else:
            raise UserError(f"{self.output}: cannot claim rank {rank} of {self.directory}")
        with os.fdopen(fd, "w") as handle:
            handle.write(owner)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)  # gone already where this run finished the set

    def _record_recipe(self, recipe: dict[str, Any]) -> None:
        """Record ``recipe`` for the set, or check it against the one recorded (the first of
        several ranks records it; ``os.link`` never overwrites, so they cannot race)."""
        path = self.directory / RECIPE
        text = json.dumps(recipe, indent=1, sort_keys=True)
        candidate = path.with_name(f".{RECIPE}.{socket.gethostname()}-{os.getpid()}{_TEMPORARY}")
        candidate.write_text(text)
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
        recorded, current = json.loads(path.read_text()), json.loads(text)
        if recorded != current:
            changed = sorted(k for k in recorded.keys() | current.keys()
                             if recorded.get(k) != current.get(k))
            raise UserError(f"{self.output}: an unfinished prepare with another recipe is in "
                            f"{self.directory} ({', '.join(changed)} differ); run that recipe "
                            f"again to finish it, or remove {self.directory} to start over")

    def committed(self, piece: Piece) -> dict[str, Any] | None:
        """The manifest of a done piece; None while it is not done (or once another process
        took the set to finish it)."""
        path = self.directory / PROGRESS / f"{SHARD_PATTERN % piece.index}.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def writer(self, piece: Piece, space: ConceptSpace) -> Iterator[PieceWriter]:
        """A writer for ``piece``, committed when the block ends normally, else abandoned."""
        writer = PieceWriter(self.directory, piece, space)
        try:
            yield writer
        except BaseException:
            writer.abandon()
            raise
        writer.commit()

    def _check_shards(self, records: list[dict[str, Any]]) -> None:
        """Refuse a set whose committed shard is gone (removed by hand since): its piece is
        marked not done, so the next run encodes it again."""
        missing = [r for r in records if r["path"] and not (self.directory / r["path"]).is_file()]
        if missing and self.directory.exists():  # else another process took the set
            for record in missing:
                (self.directory / PROGRESS / f"{record['path']}.json").unlink(missing_ok=True)
            raise DataIntegrityError(
                f"{self.directory / missing[0]['path']}: shard of a committed piece is missing "
                f"({len(missing)} in all); run the prepare again to encode those pieces again")

    def finish(self, pieces: list[Piece], space: ConceptSpace, encoder: str,
               before_swap: Callable[[Path, Manifest], None]) -> Finished | None:
        """Complete the set when every piece is done and no other process is completing it;
        else None. ``before_swap`` adds files beside the shards before the set moves."""
        records = [self.committed(piece) for piece in pieces]
        if any(record is None for record in records):
            return None
        self._check_shards(records)
        _check_unique_ids(records)
        staging = take_for_replacing(self.directory, self.output)
        if staging is None:
            return None
        manifest = _summed(records, space, encoder)
        for leftover in staging.glob(f".*{_TEMPORARY}"):  # left by killed ranks
            leftover.unlink()
        if not manifest.documents:
            shutil.rmtree(staging)
            raise no_documents(self.output, manifest.skipped)
        before_swap(staging, manifest)
        manifest.write(staging)
        # progress/ goes last: until then a killed finish is taken back by the next run
        shutil.rmtree(staging / PROGRESS)
        (staging / RECIPE).unlink()
        replace_directory(staging, self.output)
        return Finished(manifest, sum(int(r["split"]) for r in records))


def _check_unique_ids(records: list[dict[str, Any]]) -> None:
    """Refuse one document id in two pieces (each piece refuses its own repeats), so whether a
    repeat is refused never depends on ``docs_per_shard``."""
    first: dict[str, dict[str, Any]] = {}
    for record in records:
        for doc_id in record.get("ids", ()):
            earlier = first.setdefault(doc_id, record)
            if earlier is not record:
                raise InputFileError(record["file"], f"duplicate document id {doc_id!r} (records "
                                                     f"{record['start']}-{record['stop'] - 1}; "
                                                     f"also in {earlier['file']}, records "
                                                     f"{earlier['start']}-{earlier['stop'] - 1})")


def _summed(records: list[dict[str, Any]], space: ConceptSpace, encoder: str) -> Manifest:
    """The manifest of the pieces' shards: counts and skips by reason summed."""
    shards, skipped = [], {}
    for record in records:
        for reason, count in record["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + count
        if record["path"] is not None:
            shards.append({k: record[k] for k in ("path", "documents", "sentences")})
    return Manifest(space, encoder, sum(s["documents"] for s in shards),
                    sum(s["sentences"] for s in shards), shards, skipped)
