"""Where a folder of vectors records the concept space they live in: ``concept_space.json``.

Shards, normalisers, quantisers and checkpoints each write it (``write_space``); recipe
validation and components read it (``read_space``) to refuse mixing spaces.
"""
from __future__ import annotations

import json
from pathlib import Path

from lcm.errors import InputFileError
from lcm.interfaces import ConceptSpace

SPACE_FILE = "concept_space.json"
"""Written beside shards, normalisers and checkpoints: the space their vectors live in."""


def write_space(directory: str | Path, space: ConceptSpace) -> None:
    """Record the concept space of whatever ``directory`` holds."""
    Path(directory, SPACE_FILE).write_text(json.dumps(space.record()))


def read_space(location: str | Path) -> ConceptSpace | None:
    """The concept space recorded for a directory (or for a file's directory), if any."""
    location = Path(location)
    candidates = [location / SPACE_FILE, location.parent / SPACE_FILE]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return ConceptSpace.from_record(json.loads(candidate.read_text()))
            except (ValueError, TypeError) as exc:
                raise InputFileError(candidate, f"malformed concept space: {exc}") from None
    return None
