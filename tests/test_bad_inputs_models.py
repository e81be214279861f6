"""The bad-input matrix, models: weights that are not finite or a model folder that is
damaged are refused on load in one line naming the file (exit 2); every decoder refuses NaN
vectors at its entry; JSON output never holds NaN; an exported folder respects the umask and
its training log holds the real gradient norm (issue 19, items 1, 7, 10)."""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lcm.errors import DataIntegrityError, InputFileError
from lcm.json_output import dumps
from lcm.model.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint
from lcm.plugins.learned.model import load_model
from lcm.registry import get_registry
from lcm.train.log import read_log
from lcm.ui import Terminal, using
from tests._data_fixtures import run_lcm
from tests._model_fixtures import toy_model, toy_normalizer
from tests._learned_fixtures import learned, toy_recipe


def nan_in_first_tensor(weights: Path) -> str:
    tensors = load_file(str(weights))
    name = next(n for n, t in tensors.items() if t.is_floating_point())
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(weights))
    return name


def test_a_checkpoint_with_nan_weights_is_refused_naming_the_file(tmp_path):
    directory = save_checkpoint(tmp_path / "model", toy_model(), toy_normalizer())
    name = nan_in_first_tensor(directory / WEIGHTS_FILE)
    with pytest.raises(InputFileError) as caught:
        load_checkpoint(directory, get_registry())
    assert caught.value.exit_code == 2
    assert str(caught.value) == (f"{directory / WEIGHTS_FILE}: 1 NaN/inf value(s) in 1 tensor(s) "
                                 f"(first: {name}); the model diverged or the file is damaged")


@pytest.fixture(scope="module")
def decoder_folder(prepared_sample, tmp_path_factory):
    """A three-step learned decoder, exported under umask 022 (ZeRO 0, fp32)."""
    work = tmp_path_factory.mktemp("decoder")
    recipe = toy_recipe(work, prepared_sample.shards, work / "decoder", steps=3)
    text = recipe.read_text().replace("log_every: 5", "log_every: 1")
    recipe.write_text(text)
    mask = os.umask(0o022)
    try:
        result = run_lcm("run", str(recipe))
    finally:
        os.umask(mask)
    assert result.returncode == 0, result.stderr[-2000:]
    return work / "decoder"


def test_the_decoder_log_holds_the_real_gradient_norm(decoder_folder):
    rows = read_log(next(decoder_folder.parent.rglob("train_log.csv")))
    assert len(rows) == 3 and all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in rows)


def test_an_exported_folder_respects_the_umask(decoder_folder):
    assert decoder_folder.stat().st_mode & 0o777 == 0o755
    assert (decoder_folder / WEIGHTS_FILE).stat().st_mode & 0o777 == 0o644


def damaged(folder: Path, tmp_path: Path, damage) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    damage(copy)
    return copy


def truncate(copy: Path) -> None:
    weights = copy / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])


def header_bomb(copy: Path) -> None:
    (copy / WEIGHTS_FILE).write_bytes(struct.pack("<Q", 2 ** 62) + b"{}")


def other_dimension(copy: Path) -> None:
    record = json.loads((copy / "decoder.json").read_text())
    record["space"]["dim"] += 1
    (copy / "decoder.json").write_text(json.dumps(record))


DAMAGES = {
    "truncated weights": (truncate, "{w}: unreadable weights: Error while deserializing header: "
                                    "invalid header length"),
    "header-length bomb": (header_bomb, "{w}: unreadable weights: Error while deserializing header: "
                                        "header too large"),
    "missing tokenizer": (lambda c: shutil.rmtree(c / "tokenizer"),
                          "{c}/tokenizer: tokenizer folder is missing from the model folder"),
    "missing lm_config.json": (lambda c: (c / "lm_config.json").unlink(),
                               "{c}/lm_config.json: language-model configuration is missing from "
                               "the model folder"),
    "NaN weights": (lambda c: nan_in_first_tensor(c / WEIGHTS_FILE), None),
    "decoder.json of another dimension": (other_dimension, None),
}


@pytest.mark.parametrize("name", list(DAMAGES))
def test_a_damaged_decoder_folder_is_one_line_naming_the_file(decoder_folder, tmp_path, name):
    damage, message = DAMAGES[name]
    copy = damaged(decoder_folder, tmp_path, damage)
    with pytest.raises(InputFileError) as caught:
        load_model(copy)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    if message is not None:
        assert str(caught.value) == message.format(w=copy / WEIGHTS_FILE, c=copy)
    else:
        assert str(caught.value).startswith(f"{copy / WEIGHTS_FILE}: ")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_every_decoder_refuses_nonfinite_vectors_at_its_entry(decoder_folder, value):
    decoder = learned(decoder_folder)
    vectors = torch.zeros(3, 384)
    vectors[1, 5] = value
    for method in (decoder.decode, decoder.decode_traced):
        with pytest.raises(DataIntegrityError) as caught:
            method(vectors)
        assert str(caught.value) == ("decoder learned: 1 of 3 concept vector(s) hold NaN/inf "
                                     "(first: row 1); refusing to decode them")


def test_json_output_writes_nonfinite_numbers_as_null_and_says_so():
    out = io.StringIO()
    from rich.console import Console

    terminal = Terminal(mode="json", out=Console(file=out), err=Console(file=io.StringIO()))
    with using(terminal):
        terminal.outcome("line", {"last_loss": float("nan"), "curve": [1.0, float("inf")]})
    record = json.loads(out.getvalue(), parse_constant=lambda c: pytest.fail(f"wrote {c}"))
    assert record["last_loss"] is None and record["curve"] == [1.0, None]
    assert record["notes"] == {"NaN/inf written as null": 1}
    assert dumps({"x": float("-inf")}) == '{"x": null}'
