"""Outputs through ``lcm run``: lcm never deletes what it did not write, replaces an earlier
output only with ``overwrite=true``, locks an output for a run's life, and swaps a re-written
shard set into place only once it is complete."""
from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lcm.data.shards import MANIFEST, Document, Manifest, ShardWriter
from lcm.errors import DataIntegrityError
from lcm.outputs import (MARKER, Output, OutputError, check_output, claimed, lock_path, locked,
                         staging_directory)
from tests._train_fixtures import SPACE, run_lcm, train_recipe, walk_documents, write_shards, write_yaml


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("outputs") / "shards", walk_documents(12))


def fit_recipe(tmp_path: Path, shards: Path, output: Path) -> Path:
    return write_yaml(tmp_path / "fit.yaml", {"task": "fit_normalizer", "shards": str(shards),
                                               "output": str(output)})


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_train_refuses_an_output_folder_holding_a_users_files(shards, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    recipe = write_yaml(tmp_path / "train.yaml", train_recipe(shards, precious))
    result = run_lcm(recipe)
    assert result.returncode == 2
    assert "precious: folder holds files lcm did not write" in one_error_line(result)
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in precious.iterdir()) == ["thesis.tex"]

    logs = tmp_path / "mine" / "logs"
    logs.mkdir(parents=True)
    (logs / "notes.txt").write_text("mine")
    result = run_lcm(recipe, f"output={tmp_path / 'model'}", f"training_dir={tmp_path / 'mine'}")
    assert result.returncode == 2 and "mine: folder holds files lcm did not write" in result.stderr
    assert (logs / "notes.txt").read_text() == "mine"


def test_an_earlier_output_is_replaced_only_with_overwrite(shards, tmp_path):
    output = tmp_path / "norm"
    recipe = fit_recipe(tmp_path, shards, output)
    assert run_lcm(recipe).returncode == 0
    assert (output / MARKER).is_file() and (output / "normalizer.json").is_file()

    again = run_lcm(recipe)
    assert again.returncode == 2
    assert one_error_line(again) == f"error: {output}: holds an earlier lcm output; pass overwrite=true to replace it"
    assert run_lcm(recipe, "overwrite=true").returncode == 0
    assert not lock_path(output).exists()  # released at the end of each run


def test_an_existing_output_file_needs_overwrite_and_a_folder_is_not_a_file(tmp_path):
    report = tmp_path / "report.json"
    report.write_text("{}")
    with pytest.raises(OutputError, match="exists; pass overwrite=true"):
        check_output(Output(report, directory=False), overwrite=False)
    check_output(Output(report, directory=False), overwrite=True)
    with pytest.raises(OutputError, match="output file is an existing folder"):
        check_output(Output(tmp_path, directory=False), overwrite=True)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output(Output(report / "inside.jsonl", directory=False), overwrite=True)


def test_a_second_run_on_a_locked_output_is_refused(shards, tmp_path):
    output = tmp_path / "norm"
    with locked(output):
        result = run_lcm(fit_recipe(tmp_path, shards, output))
    assert result.returncode == 2
    assert f"being written by another run (pid {os.getpid()}" in one_error_line(result)
    assert not output.exists()  # refused before any work


def test_a_stale_lock_of_a_dead_process_is_reported_not_taken(shards, tmp_path):
    output = tmp_path / "norm"
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no process
    lock_path(output).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    result = run_lcm(fit_recipe(tmp_path, shards, output))
    assert result.returncode == 2
    assert f"stale lock {lock_path(output)} of pid {dead.pid}" in one_error_line(result)
    assert lock_path(output).is_file()  # still there: the user decides


def test_claimed_folders_are_marked_and_locks_released_on_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with claimed([Output(target, directory=True)]):
            assert lock_path(target).is_file() and (target / MARKER).is_file()
            raise RuntimeError("the task failed")
    assert not lock_path(target).exists()
    with claimed([Output(target, directory=True)]):  # only the marker: nothing to lose
        pass


def test_temporary_siblings_of_a_killed_run_are_removed_when_the_output_is_claimed(tmp_path):
    target = tmp_path / "shards"
    staging = staging_directory(target)  # as a run killed while writing left it
    (staging / "shard-000000.tar").write_bytes(b"half")
    (tmp_path / ".shards-training.tmp-x").mkdir()  # another output's: kept
    (tmp_path / ".shards.tmp-mine").mkdir()  # the same name, but not lcm's (no marker): kept
    with claimed([Output(target, directory=True)]):
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            ".shards-training.tmp-x", ".shards.lock", ".shards.tmp-mine", "shards"]


def _documents(count: int, tag: str) -> list[Document]:
    return [Document(f"{tag}{i}", ["a", "b"], np.ones((2, SPACE.dim), np.float16)) for i in range(count)]


def test_a_failed_rewrite_of_a_shard_set_leaves_the_previous_one(tmp_path):
    target = tmp_path / "shards"
    with ShardWriter(target, SPACE, "toy", docs_per_shard=2) as writer:
        for doc in _documents(5, "old"):
            writer.write(doc)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        with ShardWriter(target, SPACE, "toy", docs_per_shard=2) as writer:
            for doc in _documents(3, "new"):
                writer.write(doc)
            raise KeyboardInterrupt  # killed half-way through the new set
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert Manifest.read(target).documents == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]  # no staging left


def test_a_shard_set_without_documents_is_refused_and_nothing_written(tmp_path):
    writer = ShardWriter(tmp_path / "shards", SPACE, "toy")
    writer.skip("empty document", 2)
    with pytest.raises(DataIntegrityError, match="no documents to write .skipped: 2 empty document"):
        writer.close()
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path / "shards" / MANIFEST).exists()
