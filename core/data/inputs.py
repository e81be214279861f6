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
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lcm.data.readers import count_records, detect_format
from lcm.errors import InputFileError
from lcm.ui import current

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
    """The files an input names (a file, a folder or a glob), in a fixed (sorted) order: each
    real file once, however many symlinked paths reach it; what is left out is said."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = _walk(path, lambda p: _is_document_file(p, path))
        if not files:
            raise InputFileError(path, f"folder holds no document files "
                                       f"({', '.join(DOCUMENT_SUFFIXES)})")
        return files
    if glob.has_magic(spec):
        root = _fixed_prefix(spec)
        pattern = _glob_regex(spec)
        files = _walk(root, lambda p: pattern.fullmatch(str(p)) is not None) if root.is_dir() else []
        if not files:
            raise InputFileError(spec, "no file matches this pattern")
        return files
    raise InputFileError(path, "input file not found")


def _is_document_file(path: Path, folder: Path) -> bool:
    """A document file of a folder input: a known suffix, and nothing hidden on the way."""
    hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
    return path.suffix.lower() in DOCUMENT_SUFFIXES and not hidden


def _walk(root: Path, wanted: Callable[[Path], bool]) -> list[Path]:
    """The wanted files under ``root``, following symlinked folders once each: a folder seen
    before (a symlink loop, or two links to one folder) is skipped, and so is a file already
    reached by another path; both are noted with how many."""
    seen_folders, seen_files, files = set(), set(), []
    skipped_folders = skipped_files = 0
    for folder, subfolders, names in os.walk(root, followlinks=True):
        identity = _identity(Path(folder))
        if identity in seen_folders:
            skipped_folders += 1
            subfolders[:] = []
            continue
        seen_folders.add(identity)
        subfolders.sort()
        for name in sorted(names):
            file = Path(folder) / name
            if not file.is_file() or not wanted(file):
                continue
            if _identity(file) in seen_files:
                skipped_files += 1
                continue
            seen_files.add(_identity(file))
            files.append(file)
    if skipped_folders:
        current().note(f"{root}: {skipped_folders} folder(s) skipped: reached again through a "
                       f"symlink (a loop, or a second link), read once")
    if skipped_files:
        current().note(f"{root}: {skipped_files} file(s) skipped: the same file as one already "
                       f"read, through another path")
    return sorted(files)


def _identity(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_dev, status.st_ino


def _fixed_prefix(spec: str) -> Path:
    """The folder a glob starts in: its parts before the first one with a wildcard."""
    parts = Path(spec).parts
    fixed = [part for part in itertools.takewhile(lambda part: not glob.has_magic(part), parts)]
    return Path(*fixed) if fixed else Path(".")


def _glob_regex(spec: str) -> re.Pattern:
    """``glob.glob(spec, recursive=True)``'s matching as a regex over a path's text: ``**`` is
    any folders (none too), ``*`` and ``?`` stay within one name, and neither matches a name
    starting with a dot unless the pattern says so."""
    if spec.startswith("./"):
        spec = spec[2:]
    out, parts = [], spec.split("/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append("(?:[^/.][^/]*/)*" if not last else "(?:[^/.][^/]*/)*[^/.][^/]*")
            continue
        hidden = "" if part.startswith(".") or not glob.has_magic(part) else "(?![.])"
        out.append(hidden + _name_regex(part) + ("" if last else "/"))
    return re.compile("".join(out))


def _name_regex(part: str) -> str:
    """One path name's wildcards as a regex that never crosses a ``/``."""
    out, i = [], 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = part.find("]", i + 2 if part[i + 1:i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                inner = part[i + 1:end]
                inner = "^" + inner[1:] if inner.startswith("!") else inner
                out.append(f"[{inner.replace(chr(92), chr(92) * 2)}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


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
