"""The resumable shard set without an encoder: pieces commit whole or not at all, the set is
finished once (by whoever sees every piece done), and a committed shard that went missing is
refused rather than left out, and encoded again by the next run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lcm.data.inputs import Piece
from lcm.data.shard_set import PROGRESS, PartialShardSet, partial_directory
from lcm.data.shards import Document, Manifest, iter_documents
from lcm.errors import DataIntegrityError
from lcm.interfaces import ConceptSpace

SPACE = ConceptSpace("toy", 4)
RECIPE = {"encoder": {"name": "toy"}}


def pieces(source: Path, count: int) -> list[Piece]:
    return [Piece(i, source, 2 * i, 2 * i + 2) for i in range(count)]


def write_piece(shard_set: PartialShardSet, piece: Piece) -> None:
    with shard_set.writer(piece, SPACE) as writer:
        writer.write(Document(f"doc{piece.index}", ["a.", "b."], np.ones((2, 4)), {"piece": piece.index}))
        writer.skip("empty document")


def nothing_to_add(directory: Path, manifest: Manifest) -> None:
    """``finish``'s hook when no file goes beside the shards."""


def test_a_set_is_finished_once_every_piece_is_done(tmp_path):
    output, plan = tmp_path / "shards", pieces(tmp_path / "in.txt", 3)
    first = PartialShardSet(output, RECIPE)
    for piece in plan[:2]:
        write_piece(first, piece)
    assert first.finish(plan, SPACE, "toy", nothing_to_add) is None  # piece 2 is not done
    second = PartialShardSet(output, RECIPE)  # another rank, or a rerun
    assert [second.committed(p) is not None for p in plan] == [True, True, False]
    write_piece(second, plan[2])
    finished = second.finish(plan, SPACE, "toy", nothing_to_add)
    assert (finished.manifest.documents, finished.manifest.skipped) == (3, {"empty document": 3})
    assert first.finish(plan, SPACE, "toy", nothing_to_add) is None  # already taken
    assert [d.meta["piece"] for d in iter_documents(output)] == [0, 1, 2]
    assert not partial_directory(output).exists()
    assert sorted(p.name for p in output.iterdir()) == [
        ".lcm-output", "concept_space.json", "manifest.json", "shard-000000.tar",
        "shard-000001.tar", "shard-000002.tar"]


def test_a_piece_that_fails_leaves_nothing_behind(tmp_path):
    output, [piece] = tmp_path / "shards", pieces(tmp_path / "in.txt", 1)
    shard_set = PartialShardSet(output, RECIPE)
    with pytest.raises(DataIntegrityError, match="2 vectors of dim 3"):
        with shard_set.writer(piece, SPACE) as writer:
            writer.write(Document("bad", ["a.", "b."], np.ones((2, 3))))
    assert shard_set.committed(piece) is None
    assert sorted(p.name for p in partial_directory(output).iterdir()) == [
        ".lcm-output", PROGRESS, "recipe.json"]


def test_a_committed_shard_that_is_missing_is_refused(tmp_path):
    output, plan = tmp_path / "shards", pieces(tmp_path / "in.txt", 2)
    shard_set = PartialShardSet(output, RECIPE)
    for piece in plan:
        write_piece(shard_set, piece)
    (partial_directory(output) / "shard-000001.tar").unlink()
    with pytest.raises(DataIntegrityError, match=r"shard-000001.tar: shard of a committed piece "
                                                 r"is missing \(1 in all\); run the prepare again"):
        shard_set.finish(plan, SPACE, "toy", nothing_to_add)
    assert not (output / "manifest.json").exists()
    assert [shard_set.committed(p) is not None for p in plan] == [True, False]  # to encode again
    write_piece(shard_set, plan[1])
    assert shard_set.finish(plan, SPACE, "toy", nothing_to_add).manifest.documents == 2


def test_a_users_folder_where_the_partial_set_would_go_is_refused_and_kept(tmp_path):
    from lcm.data.shard_set import PartialShardSet, partial_directory
    from lcm.errors import UserError

    output = tmp_path / "shards"
    foreign = partial_directory(output)
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds files lcm did not write"):
        PartialShardSet(output, {"encoder": "x"})
    assert (foreign / "notes.txt").read_text() == "mine"


def test_a_users_progress_folder_in_an_unmarked_partial_set_is_refused_and_kept(tmp_path):
    from lcm.data.shard_set import PartialShardSet, partial_directory
    from lcm.errors import UserError

    output = tmp_path / "shards"
    mine = partial_directory(output) / PROGRESS
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds files lcm did not write"):
        PartialShardSet(output, {"encoder": "x"})
    assert (mine / "notes.txt").read_text() == "mine"
