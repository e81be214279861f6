"""Every code block of the README and of the docs pages runs here (or is marked, with a
reason, as not runnable here): a page's commands and scripts in order, in a folder and an
environment of its own (see ``tests._doc_examples``). The run prints how many ran."""
from __future__ import annotations

import collections

import pytest

from tests._doc_examples import Session, blocks_of, every_block, pages

TALLY: collections.Counter = collections.Counter()
"""Blocks by what was done with them; the terminal summary prints it (tests/conftest.py)."""


def test_every_block_is_run_or_marked_with_a_reason():
    blocks = every_block()
    assert blocks, "no code blocks found"
    assert all(b.argument for b in blocks if b.action in ("skip", "validate"))
    assert sum(b.action in ("run", "validate") for b in blocks) >= 10  # the guide is mostly run


@pytest.mark.parametrize("page", [p for p in pages() if blocks_of(p)], ids=lambda p: p.name)
def test_the_page_s_examples_run(page, tmp_path):
    session = Session(tmp_path)
    for block in blocks_of(page):
        if block.action == "skip":
            TALLY["not run (marked with a reason)"] += 1
            continue
        problem = session.run(block)
        assert problem is None, f"{block.where} ({block.language}, {block.action}): {problem}"
        TALLY[{"run": "executed", "validate": "executed (lcm run --dump-config)",
               "file": "written as files and used", "parse": "parsed (recipe fragments)"}[block.action]] += 1
