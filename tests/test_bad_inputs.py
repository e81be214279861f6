"""The bad-input matrix: each case is a recipe (and overrides) run through ``lcm run``, the exit
code it must give (2: the user's input, 1: a failure while running) and the one line of stderr
it must print, with no traceback. The README links this file.

Each case builds its inputs in a fresh folder (``Case.setup``); ``{d}`` in its recipe, overrides
and message stands for that folder.
"""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from lcm.cli import main
from lcm.data.normalizer import NORMALIZER_FILE
from lcm.data.shards import MANIFEST, shard_paths
from lcm.outputs import lock_path
from tests._bad_input_fixtures import doubling, fit, shards
from tests._train_fixtures import restored_process_state, write_yaml


@dataclass
class Case:
    setup: Callable[[Path], dict]
    """Writes the case's inputs under the folder; returns the recipe."""
    message: str
    """The error line after ``error: ``; ``{d}`` is the folder."""
    overrides: list[str] = field(default_factory=list)
    exit_code: int = 2


def train(d: Path, **options: object) -> dict:
    data = shards(d)
    return {"task": "train", "output": str(d / "model"),
            "data": {"shards": str(data), "normalizer": str(data / NORMALIZER_FILE),
                     "max_concepts": 8, "batch_size": 4, "shuffle_buffer": 8},
            "model": {"arch": "toy", "overrides": {"model_dim": 16, "num_layers": 1}},
            "train": {"steps": 4, "warmup_steps": 0, "log_every": 1, "checkpoint_every": 4, **options},
            "distributed": {"cpu_threads": 1}}


def prepare(d: Path, input_path: Path) -> dict:
    return {"task": "prepare", "input": str(input_path), "output": str(d / "out")}


# ------------------------------------------------------------------------------ setups

def users_folder(d: Path) -> dict:
    (d / "precious").mkdir()
    (d / "precious" / "notes.txt").write_text("mine")
    return {**fit(d), "output": str(d / "precious")}


def earlier_output(d: Path) -> dict:
    recipe = fit(d)
    assert main(["run", str(write_yaml(d / "first.yaml", recipe))]) == 0
    return recipe


def under_a_file(d: Path) -> dict:
    (d / "plain.txt").write_text("x")
    return {**fit(d), "output": str(d / "plain.txt" / "norm")}


def file_output_is_a_folder(d: Path) -> dict:
    (d / "corpus.jsonl").mkdir()
    return {"task": "wiki_corpus", "output": str(d / "corpus.jsonl"), "limit": 1}


def locked_by(pid: int) -> Callable[[Path], dict]:
    def setup(d: Path) -> dict:
        recipe = fit(d)
        lock_path(d / "norm").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
        return recipe
    return setup


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


DEAD_PID = dead_pid()
HOST = socket.gethostname()


def poisoned(d: Path) -> dict:
    recipe = fit(d)
    _rewrite_first_vectors(d / "shards", first_value_nan)
    return recipe


def first_value_nan(vectors: np.ndarray) -> np.ndarray:
    vectors = vectors.copy()
    vectors[0, 0] = np.nan
    return vectors


def wrong_dimension(d: Path) -> dict:
    recipe = fit(d)
    _rewrite_first_vectors(d / "shards", lambda v: v[:, :-1])
    return recipe


def truncated(d: Path) -> dict:
    recipe = fit(d)
    shard = shard_paths(d / "shards")[0]
    shard.write_bytes(shard.read_bytes()[:700])
    return recipe


def escaping_manifest(d: Path) -> dict:
    recipe = fit(d)
    manifest = d / "shards" / MANIFEST
    data = json.loads(manifest.read_text())
    data["shards"][0]["path"] = "../../etc/passwd"
    manifest.write_text(json.dumps(data))
    return recipe


def nan_normaliser(d: Path) -> dict:
    recipe = train(d)
    path = d / "shards" / NORMALIZER_FILE
    data = json.loads(path.read_text())
    data["scale"][0] = float("nan")
    path.write_text(json.dumps(data))
    return recipe


def input_folder(d: Path) -> dict:
    (d / "docs").mkdir()
    return prepare(d, d / "docs")


def empty_jsonl(d: Path) -> dict:
    (d / "docs.jsonl").write_text("")
    return prepare(d, d / "docs.jsonl")


def _rewrite_first_vectors(directory: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    shard = shard_paths(directory)[0]
    with tarfile.open(shard) as source:
        members = [(m, source.extractfile(m).read()) for m in source.getmembers()]
    first = next(m.name for m, _ in members if m.name.endswith("vectors.npy"))
    with tarfile.open(shard, "w") as target:
        for member, data in members:
            if member.name == first:
                buffer = io.BytesIO()
                np.save(buffer, change(np.load(io.BytesIO(data))))
                data = buffer.getvalue()
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))


# ------------------------------------------------------------------------------ setups (pass 2)


def interpolation_bomb(d: Path) -> dict:
    return {**fit(d), **doubling(5), "output": "${l5}"}


def docs_jsonl(d: Path, name: str, ids: list[str]) -> Path:
    path = d / name
    path.write_text("".join(json.dumps({"id": i, "text": f"Document {i} is short. It has two "
                                                          f"sentences."}) + "\n" for i in ids))
    return path


def repeated_id_across_pieces(d: Path) -> dict:
    data = docs_jsonl(d, "docs.jsonl", ["a", "b", "c", "a"])
    return {"task": "prepare", "input": str(data), "output": str(d / "out"), "docs_per_shard": 2}


def output_here(d: Path) -> dict:
    os.chdir(d)
    return {**fit(d), "output": "."}


# ------------------------------------------------------------------------------ the matrix

CASES = {
    # outputs (items 1, 3, 10)
    "output folder of a user's files": Case(
        users_folder, "{d}/precious: folder holds files lcm did not write; lcm never deletes "
                      "those (name a new or empty folder)"),
    "earlier output without overwrite": Case(
        earlier_output, "{d}/norm: holds an earlier lcm output; pass overwrite=true to replace it"),
    "output below a file": Case(
        under_a_file, "{d}/plain.txt/norm: cannot be written, {d}/plain.txt is a file, not a folder"),
    "output file that is a folder": Case(
        file_output_is_a_folder, "{d}/corpus.jsonl: output file is an existing folder"),
    "output locked by a running process": Case(
        locked_by(os.getpid()), f"{{d}}/norm: being written by another run (pid {os.getpid()} on "
                                f"{HOST}; lock {{d}}/.norm.lock)"),
    "stale lock of a dead process": Case(
        locked_by(DEAD_PID), f"{{d}}/norm: stale lock {{d}}/.norm.lock of pid {DEAD_PID} on {HOST}, "
                             f"which is no longer running; check the output, then remove the lock "
                             f"to write here again"),
    # recipes (items 9, 12)
    "environment resolver": Case(
        fit, "{d}/recipe.yaml: output: resolver ${{oc.env:...}} is not allowed in recipes (only "
             "${{key}} interpolation is)", ["output=${oc.env:HOME}/norm"]),
    "resume that is no checkpoint": Case(
        lambda d: train(d, resume="maybe"),
        "{d}/recipe.yaml:19:3: train.resume: 'maybe' is neither true/false nor an existing checkpoint "
        "folder"),
    "overwrite that is no boolean": Case(
        fit, "{d}/recipe.yaml: overwrite: expected true or false, got 'maybe'", ["overwrite=maybe"]),
    # data (items 5, 10)
    "NaN vector in a shard": Case(
        poisoned, "{d}/shards/shard-000000.tar: document doc00001 has 1 non-finite values (NaN/inf) "
                  "in 1 vector(s), first at row 0; refusing the shard set"),
    "vectors of another dimension": Case(
        wrong_dimension, "{d}/shards/shard-000000.tar: document doc00001 has vectors of dimension "
                         "15, but the manifest's space has 16"),
    "truncated shard": Case(truncated, "{d}/shards/shard-000000.tar: corrupt or truncated shard "
                                       "(empty header)"),
    "manifest path leaving the shard folder": Case(
        escaping_manifest, "{d}/shards/manifest.json: shard path '../../etc/passwd' leaves the "
                           "shard folder; refusing it"),
    "normaliser with a NaN scale": Case(
        nan_normaliser, "{d}/recipe.yaml:3:1: data: {d}/shards/normalizer.json: unusable normalizer: "
                        "scale holds 1 NaN/inf value(s) (fit it again)"),
    "prepare given a folder without documents": Case(
        input_folder, "{d}/docs: folder holds no document files (.txt, .jsonl, .ndjson, "
                      ".parquet)"),
    "prepare given an empty JSONL": Case(
        empty_jsonl, "{d}/out: no documents to write (skipped: none); nothing was written"),
    # training (item 5)
    "loss that stays NaN": Case(
        lambda d: train(d, lr=1e30, grad_clip=0, max_nonfinite_steps=2),
        "training stopped at step 3: the loss was NaN or inf for 2 consecutive steps "
        "(train.max_nonfinite_steps); no model was exported (lower train.lr, or check the data "
        "and normaliser)", exit_code=1),
    # pass 2, item 1: a run ending in NaN exports nothing
    "run that ends with a NaN loss": Case(
        lambda d: train(d, lr=1e30, grad_clip=0, steps=3),
        "training ended at step 3 with a loss of nan; no model was exported (lower train.lr, "
        "set train.grad_clip, or check the data and normaliser)", exit_code=1),
    # item 2: interpolation is bounded
    "interpolation that expands to 7 MB": Case(
        interpolation_bomb, "{d}/recipe.yaml: output: interpolation would produce more than "
                            "100000 characters; refusing it; l4: interpolation would produce more "
                            "than 100000 characters; refusing it; l5: interpolation would produce "
                            "more than 100000 characters; refusing it"),
    # item 3: no resolver however its name is spelt
    "resolver named through a field": Case(
        fit, "{d}/recipe.yaml: output: resolver ${{oc.${{format}}:...}} is not allowed in recipes "
             "(only ${{key}} interpolation is)", ["output=${oc.${format}:HOME}/norm", "format=env"]),
    "resolver named by interpolation": Case(
        fit, "{d}/recipe.yaml: output: resolver ${{${{vars.r}}:...}} is not allowed in recipes "
             "(only ${{key}} interpolation is)", ["output=${${vars.r}:HOME}/norm", "vars.r=oc.env"]),
    # item 6: one id in two pieces, refused whatever docs_per_shard
    "document id repeated in another piece": Case(
        repeated_id_across_pieces,
        "{d}/docs.jsonl: duplicate document id 'a' (records 2-3; also in {d}/docs.jsonl, "
        "records 0-1)"),
    # item 10: an output that names the current folder
    "output=.": Case(output_here, ".: names {d} itself; an output must be a file or folder of "
                                  "its own (name a new one inside it)"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case = CASES[name]
    recipe = write_yaml(tmp_path / "recipe.yaml", case.setup(tmp_path))
    capsys.readouterr()
    with restored_process_state():
        code = main(["run", str(recipe), *case.overrides])
    err = capsys.readouterr().err
    assert code == case.exit_code, err
    lines = [line for line in err.splitlines() if line.startswith("error: ") or "Traceback" in line]
    assert lines == [f"error: {case.message.format(d=tmp_path)}"], err
