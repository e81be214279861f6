"""The documents of a corpus as pieces of work: the input files, and each cut into ranges of
records.

An input is one file, a folder (its .txt/.jsonl/.parquet files, recursively) or a glob. Every
file is cut into pieces of at most ``records_per_piece`` records, numbered in file order then
record order. The plan depends only on the input and the recipe, never on how many processes
run it: piece ``i`` goes to rank ``i % world_size`` and becomes shard ``i``, so any number of
ranks writes the same shard set, and a rerun knows which pieces are already done.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from lcm.data.readers import count_records, detect_format
from lcm.errors import InputFileError

DOCUMENT_SUFFIXES = (".txt", ".jsonl", ".ndjson", ".parquet")


@dataclass(frozen=True)
class Piece:
    """Records ``[start, stop)`` of one input file: one unit of work, one shard."""

    index: int
    file: Path
    start: int
    stop: int

    @property
    def records(self) -> int:
        return self.stop - self.start


def input_files(spec: str) -> list[Path]:
    """The files an input names (a file, a folder or a glob), in a fixed (sorted) order."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_document_file(p, path))
        if not files:
            raise InputFileError(path, f"folder holds no document files "
                                       f"({', '.join(DOCUMENT_SUFFIXES)})")
        return files
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not files:
            raise InputFileError(spec, "no file matches this pattern")
        return files
    raise InputFileError(path, "input file not found")


def _is_document_file(path: Path, folder: Path) -> bool:
    """A document file of a folder input: a known suffix, and nothing hidden on the way."""
    hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
    return path.suffix.lower() in DOCUMENT_SUFFIXES and not hidden


def plan_pieces(files: list[Path], fmt: str, records_per_piece: int,
                limit: int | None = None) -> list[Piece]:
    """Every file cut into pieces of ``records_per_piece`` records; ``limit`` records in all at
    most (counting from the first file). Counting reads each text file once, without decoding."""
    pieces: list[Piece] = []
    left = limit if limit is not None else float("inf")
    for file in files:
        detect_format(file, fmt)  # refuse an unknown suffix before any work
        records = int(min(count_records(file, fmt), left))
        left -= records
        for start in range(0, records, records_per_piece):
            pieces.append(Piece(len(pieces), file, start, min(start + records_per_piece, records)))
    return pieces


def rank_pieces(pieces: list[Piece], rank: int, world_size: int) -> list[Piece]:
    """This rank's share: every ``world_size``-th piece from piece ``rank``."""
    return pieces[rank::world_size]
