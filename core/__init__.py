"""lcm: Large Concept Models — language modelling in a sentence-embedding space."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lcm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
