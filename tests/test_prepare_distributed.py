"""``prepare`` on several processes: two ranks through ``torchrun`` write the set one rank
writes; a rank killed mid-way is resumed without a document twice or missing; a changed recipe
is refused for the unfinished set; a job array's last rank completes it; a glob of Parquet files
in the reference layout. The single-rank set is the session's ``prepared_sample``
(data/sample_docs.txt with two blank lines, minilm)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from lcm.cli import main
from lcm.data.shard_set import PROGRESS, partial_directory
from lcm.data.shards import MANIFEST, Manifest, iter_documents
from tests._data_fixtures import LCM, REPO, write_recipe
from tests._train_fixtures import restored_process_state

TORCHRUN = REPO / ".venv" / "bin" / "torchrun"
PIECES = 11  # 22 records (20 documents, 2 blank) in pieces of 2


def torchrun_lcm(recipe: Path, ranks: int = 2) -> subprocess.Popen:
    """``lcm run RECIPE`` on ``ranks`` CPU processes, launched as a user launches training."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([str(TORCHRUN), "--standalone", f"--nproc-per-node={ranks}",
                             str(LCM), "run", str(recipe)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def prepare_recipe(path: Path, source: Path, output: Path, docs_per_shard: int) -> Path:
    return write_recipe(path, (
        f"task: prepare\ninput: {source}\noutput: {output}\n"
        "encoder: {name: minilm, device: cpu}\n"
        f"docs_per_shard: {docs_per_shard}\nbatch_size: 16\n"))


def by_id(shards: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """Every document of a set by its id, checking that none appears twice."""
    documents = list(iter_documents(shards))
    ids = [doc.meta["id"] for doc in documents]
    assert len(ids) == len(set(ids)), "a document was written twice"
    return {doc.meta["id"]: (doc.sentences, doc.vectors.astype(np.float32)) for doc in documents}


def assert_same_set(shards: Path, reference: Path) -> None:
    """The same documents, sentences and vectors (as a set) and the same counts."""
    got, expected = by_id(shards), by_id(reference)
    assert sorted(got) == sorted(expected)
    for key, (sentences, vectors) in expected.items():
        assert got[key][0] == sentences
        np.testing.assert_allclose(got[key][1], vectors, atol=2e-3)
    manifest, single = Manifest.read(shards), Manifest.read(reference)
    assert (manifest.documents, manifest.sentences, manifest.skipped) == \
        (single.documents, single.sentences, single.skipped)


def test_two_ranks_through_torchrun_write_the_set_one_rank_writes(prepared_sample, tmp_path):
    output = tmp_path / "shards"
    recipe = prepare_recipe(tmp_path / "p.yaml", prepared_sample.input, output, docs_per_shard=8)
    launched = torchrun_lcm(recipe)
    stdout, stderr = launched.communicate(timeout=300)
    assert launched.returncode == 0, stderr
    assert_same_set(output, prepared_sample.shards)
    # the pieces do not depend on the number of ranks: the very same shards
    assert Manifest.read(output).shards == Manifest.read(prepared_sample.shards).shards
    assert stdout.count("wrote 20 documents") == 1  # the last rank to finish writes the set
    assert not partial_directory(output).exists()


def run_in_process(recipe: Path, *overrides: str) -> int:
    """``lcm run`` in this process (no interpreter start-up); its exit code."""
    with restored_process_state():
        code = main(["run", str(recipe), *overrides])
    return code


def kill_rank_after_its_first_shard(launched: subprocess.Popen, progress: Path, rank: int) -> None:
    """SIGKILL the worker of ``rank`` once one of its pieces (every other one) is committed."""
    deadline = time.monotonic() + 240
    while not any(int(p.name[6:12]) % 2 == rank for p in progress.glob("shard-*.json")):
        assert launched.poll() is None and time.monotonic() < deadline, launched.stderr.read()
        time.sleep(0.02)
    for child in psutil.Process(launched.pid).children(recursive=True):
        if child.environ().get("RANK") == str(rank):
            child.send_signal(signal.SIGKILL)
            return
    raise AssertionError(f"no worker of rank {rank}")


def test_a_killed_rank_is_resumed_and_a_changed_recipe_refused(prepared_sample, tmp_path, capsys):
    output = tmp_path / "shards"
    recipe = prepare_recipe(tmp_path / "p.yaml", prepared_sample.input, output, docs_per_shard=2)
    launched = torchrun_lcm(recipe)
    progress = partial_directory(output) / PROGRESS
    kill_rank_after_its_first_shard(launched, progress, rank=1)
    launched.communicate(timeout=120)
    assert launched.returncode != 0 and not (output / MANIFEST).exists()
    kept = len(list(progress.glob("shard-*.json")))
    assert 1 <= kept < PIECES

    capsys.readouterr()
    assert run_in_process(recipe, "segmenter.max_chars=150") == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {output}: an unfinished prepare with another recipe is in "
        f"{partial_directory(output)} (segmenter differ); run that recipe again to finish it, "
        f"or remove {partial_directory(output)} to start over")

    resumed = torchrun_lcm(recipe)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"kept {kept} complete shards of an earlier run" in stdout
    assert_same_set(output, prepared_sample.shards)
    assert len(Manifest.read(output).shards) == PIECES
    assert sorted(p.name for p in output.iterdir() if p.name.startswith(".")) == [".lcm-output"]


def test_a_job_array_is_completed_by_its_last_rank(prepared_sample, tmp_path, capsys):
    output = tmp_path / "shards"
    recipe = prepare_recipe(tmp_path / "p.yaml", prepared_sample.input, output, docs_per_shard=8)
    assert run_in_process(recipe, "rank=1", "world_size=2") == 0
    assert "rank 1 of 2: encoded 1 shards" in capsys.readouterr().out
    assert not (output / MANIFEST).exists()
    assert run_in_process(recipe, "rank=0", "world_size=2") == 0
    assert "wrote 20 documents" in capsys.readouterr().out
    assert_same_set(output, prepared_sample.shards)


def test_a_glob_of_parquet_files_in_the_reference_layout(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {"first": [("a", ["Cats sleep a lot.", "They purr."]), ("b", [])],
            "second": [("c", ["Rain fell all day.", "The river rose.", "Boats stayed in."])]}
    (tmp_path / "corpus").mkdir()
    for name, documents in rows.items():
        ids, sentences = zip(*documents)
        table = pa.table({"id": list(ids), "text": [" ".join(s) for s in sentences],
                          "text_sentences": list(sentences)})
        pq.write_table(table, tmp_path / "corpus" / f"{name}.parquet")
    recipe = write_recipe(tmp_path / "p.yaml", (
        f"task: prepare\ninput: {tmp_path / 'corpus' / '*.parquet'}\noutput: {tmp_path / 'out'}\n"
        "encoder: {name: minilm, device: cpu}\nsentences_field: text_sentences\n"))
    assert run_in_process(recipe) == 0
    assert "wrote 2 documents, 5 sentences in 2 shards" in capsys.readouterr().out
    documents = {doc.meta["id"]: doc for doc in iter_documents(tmp_path / "out")}
    assert {k: d.sentences for k, d in documents.items()} == {"a": rows["first"][0][1],
                                                             "c": rows["second"][0][1]}
    assert documents["c"].meta["source"] == "second.parquet"
    assert Manifest.read(tmp_path / "out").skipped == {"empty document": 1}


@pytest.mark.parametrize("keys, env, message", [
    ({"rank": 0}, {}, "rank and world_size go together"),
    ({"rank": 2, "world_size": 2}, {}, "rank must be in [0, world_size)"),
    ({"rank": 0, "world_size": 2}, {"WORLD_SIZE": "2"}, "rank=/world_size= are for a job array"),
])
def test_rank_keys_that_cannot_hold_are_refused(keys, env, message):
    from lcm.data.ranks import resolve_ranks
    from lcm.errors import UserError

    with pytest.raises(UserError, match=message.replace("[", r"\[").replace(")", r"\)")):
        resolve_ranks(keys.get("rank"), keys.get("world_size"), env)


def test_ranks_come_from_the_launcher():
    from lcm.data.ranks import Ranks, resolve_ranks

    launcher = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h",
                "MASTER_PORT": "1"}
    assert resolve_ranks(None, None, launcher) == Ranks(3, 4, 1, True)
    assert resolve_ranks(None, None, {}) == Ranks(0, 1, 0, False)
    assert resolve_ranks(2, 5, {}) == Ranks(2, 5, 0, False)
