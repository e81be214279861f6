"""Helpers of the data-path tests: the installed ``lcm`` as a user runs it, the sample documents,
and what the session fixtures (``conftest.py``) hold."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LCM = REPO / ".venv" / "bin" / "lcm"
SAMPLE = REPO / "data" / "sample_docs.txt"
BLANK_LINES = 2  # inserted into a copy of the sample: empty documents to be skipped and counted


def run_lcm(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it (hub offline)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(LCM), *args], capture_output=True, text=True, cwd=cwd, env=env)


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@dataclass
class PreparedSample:
    input: Path
    shards: Path
    result: subprocess.CompletedProcess
