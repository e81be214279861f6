"""The bad-input matrix, command line and inputs: non-finite numbers to ``lcm plan``, a
sibling recipe never resolved whole, symlink loops read once, and prepare's content hash,
rank claim and killed finish (issue 19, items 2, 4, 6, 8)."""
from __future__ import annotations

import os

import pytest

import lcm.config
from lcm.cli import main
from lcm.data.inputs import input_files
from lcm.data.shard_set import PartialShardSet, partial_directory
from lcm.errors import UserError
from lcm.ui import Terminal, using
from tests._bad_input_fixtures import doubling, fit
from tests._train_fixtures import write_yaml

PLAN = ["plan", "recipes/train_wiki.yaml", "--gpus", "1"]


@pytest.mark.parametrize("args, message", [
    (["--tokens", "nan"], "--tokens: nan is not a finite number"),
    (["--tokens", "inf"], "--tokens: inf is not a finite number"),
    (["--flops", "inf"], "--flops: inf is not a finite number"),
    (["--mfu", "nan"], "--mfu: nan is not a finite number"),
    (["--gpu-memory", "1e400GB"], "--gpu-memory '1e400GB': inf is not a finite number"),
    (["--gpu-memory", "nan"], "--gpu-memory 'nan' is not a size such as 80GB or 40960MB"),
])
def test_plan_refuses_nonfinite_numbers_in_one_line(capsys, args, message):
    assert main([*PLAN, *args]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_a_sibling_recipe_is_read_for_its_outputs_alone(tmp_path, monkeypatch, capsys):
    write_yaml(tmp_path / "first.yaml", {**fit(tmp_path, "norm"), **doubling(3),
                                         "notes": "${l3}"})
    faulty = write_yaml(tmp_path / "second.yaml", {"task": "fit_normalizer",
                                                   "shards": str(tmp_path / "norm"),
                                                   "output": str(tmp_path / "again")})
    validated = []
    real = lcm.config.validate_recipe
    monkeypatch.setattr(lcm.config, "validate_recipe",
                        lambda cfg, *a, **k: validated.append(a[1] if len(a) > 1 else
                                                              k.get("source")) or real(cfg, *a, **k))
    assert main(["run", str(faulty)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {faulty}:2:1: shards: file not found: {tmp_path / 'norm'}; {tmp_path / 'first.yaml'} "
        f"writes it, run that first")
    assert set(validated) == {str(faulty)}  # the sibling is never validated (resolved) whole


def test_a_glob_under_a_symlink_loop_reads_each_file_once_and_says_so(tmp_path, capsys):
    folder = tmp_path / "loopdir" / "inner"
    folder.mkdir(parents=True)
    (folder / "docs.jsonl").write_text('{"id": "a", "text": "One."}\n')
    (folder / "back").symlink_to(tmp_path / "loopdir")
    (tmp_path / "loopdir" / "again").symlink_to(folder)
    with using(Terminal()):
        for spec in (tmp_path / "loopdir" / "**" / "*.jsonl", tmp_path / "loopdir"):
            files = input_files(str(spec))
            assert [f.resolve() for f in files] == [folder / "docs.jsonl"]
    err = " ".join(capsys.readouterr().err.split())
    assert f"note: {tmp_path / 'loopdir'}: 2 folder(s) skipped: reached again through a symlink " \
           f"(a loop, or a second link), read once" in err


def test_a_symlinked_subfolder_of_a_folder_input_is_read(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "more.txt").write_text("Another document.\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("A document.\n")
    (tmp_path / "docs" / "linked").symlink_to(elsewhere)
    with using(Terminal()):
        assert input_files(str(tmp_path / "docs")) == [tmp_path / "docs" / "a.txt",
                                                       tmp_path / "docs" / "linked" / "more.txt"]


def test_an_input_changed_with_its_size_and_mtime_kept_is_not_resumed(tmp_path, capsys):
    data = tmp_path / "docs.txt"
    data.write_text("First document here.\nSecond document here.\n")
    recipe = write_yaml(tmp_path / "prepare.yaml", {"task": "prepare", "input": str(data),
                                                    "output": str(tmp_path / "out"),
                                                    "docs_per_shard": 1})
    partial = partial_directory(tmp_path / "out")
    from lcm.tasks.prepare import _fingerprint  # what the partial set is recorded with
    from lcm.config import resolve_recipe
    from lcm.registry import get_registry

    config = resolve_recipe(recipe, (), get_registry()).config
    PartialShardSet(tmp_path / "out", _fingerprint(config, [data]))
    stat = data.stat()
    data.write_text("First document HERE.\nSecond document here.\n")
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    capsys.readouterr()
    assert main(["run", str(recipe)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'out'}: an unfinished prepare with another recipe is in {partial} "
        f"(input differ); run that recipe again to finish it, or remove {partial} to start over")


def test_a_second_run_of_one_prepare_is_refused_at_its_start(tmp_path):
    shard_set = PartialShardSet(tmp_path / "out", {"recipe": 1})
    with shard_set.claimed_rank(0, 1):
        with pytest.raises(UserError) as caught:
            with PartialShardSet(tmp_path / "out", {"recipe": 1}).claimed_rank(0, 1):
                pass
    assert str(caught.value).startswith(f"{tmp_path / 'out'}: another prepare of this recipe is "
                                        f"writing {partial_directory(tmp_path / 'out')} as rank 0 "
                                        f"(pid {os.getpid()} on ")
    with shard_set.claimed_rank(0, 1):  # released: the next run takes it
        pass


def test_a_finish_killed_after_taking_the_set_is_taken_back(tmp_path):
    import socket
    import subprocess

    shard_set = PartialShardSet(tmp_path / "out", {"recipe": 1})
    (shard_set.directory / "shard-000000.tar").write_bytes(b"done")
    dead = subprocess.Popen(["true"])
    dead.wait()
    staging = tmp_path / f".out.tmp-{socket.gethostname()}-{dead.pid}"
    os.rename(shard_set.directory, staging)  # where finish renamed it when it was killed
    again = PartialShardSet(tmp_path / "out", {"recipe": 1})
    assert (again.directory / "shard-000000.tar").read_bytes() == b"done" and not staging.exists()
