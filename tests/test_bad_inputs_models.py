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


# --------------------------------------------------------------------------- missing plugins

def registry_without(entry_point: str):
    """The installed plugins minus one entry point: as if its package were uninstalled."""
    import importlib.metadata as md

    from lcm.registry import build_registry

    return build_registry([ep for ep in md.entry_points(group="lcm") if ep.name != entry_point])


def test_a_checkpoint_records_the_plugin_package_of_its_head(tmp_path):
    directory = save_checkpoint(tmp_path / "model", toy_model(), toy_normalizer())
    assert json.loads((directory / "config.json").read_text())["plugins"] == {"head:mse": "lcm"}


def test_a_checkpoint_whose_head_plugin_is_gone_names_the_package(tmp_path):
    from lcm.errors import PluginNotInstalledError

    directory = save_checkpoint(tmp_path / "model", toy_model(), toy_normalizer())
    config = directory / "config.json"
    meta = json.loads(config.read_text())
    meta["plugins"] = {"head:mse": "lcm-gated-cosine"}  # as a third-party head records it
    config.write_text(json.dumps(meta))
    with pytest.raises(PluginNotInstalledError) as caught:
        load_checkpoint(directory, registry_without("mse"))
    assert caught.value.exit_code == 2
    assert str(caught.value) == (f"{directory}: head 'mse' is not installed: the checkpoint was "
                                 f"trained with plugin package lcm-gated-cosine (pip install it)")


def test_a_checkpoint_from_before_the_record_still_loads_and_says_unknown(tmp_path):
    from lcm.errors import UnknownComponentError

    directory = save_checkpoint(tmp_path / "model", toy_model(), toy_normalizer())
    config = directory / "config.json"
    meta = json.loads(config.read_text())
    del meta["plugins"]
    config.write_text(json.dumps(meta))
    assert load_checkpoint(directory, get_registry()).model.head.name == "mse"
    with pytest.raises(UnknownComponentError, match="unknown head 'mse'; known heads: "):
        load_checkpoint(directory, registry_without("mse"))


# --------------------------------------------------------------------------- SONAR local files

@pytest.fixture(scope="module")
def sonar(tmp_path_factory):
    from tests._sonar_fixtures import build_assets

    return build_assets(tmp_path_factory.mktemp("sonar"))


def sonar_encoder(options: dict):
    from lcm.components import component_options
    from lcm.plugins.encoders.sonar_text import SonarTextEncoder

    return SonarTextEncoder(component_options(SonarTextEncoder, options))


SONAR_COMPONENTS = {  # kind of local_options -> (component class path, its default card)
    "encoder": ("lcm.plugins.encoders.sonar_text.SonarTextEncoder", "text_sonar_basic_encoder"),
    "decoder": ("lcm.plugins.decoders.sonar_text.SonarTextDecoder", "text_sonar_basic_decoder"),
    "speech": ("lcm.plugins.encoders.sonar_speech.SonarSpeechEncoder", "sonar_speech_encoder_eng"),
}


@pytest.mark.parametrize("kind", list(SONAR_COMPONENTS))
def test_a_local_sonar_checkpoint_without_model_config_asks_for_model_config(sonar, kind):
    import importlib

    from lcm.components import component_options
    from lcm.errors import UserError

    class_path, card = SONAR_COMPONENTS[kind]
    module, name = class_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    options = {**sonar.local_options(kind)}
    checkpoint = options["checkpoint"]
    del options["model_config"]
    with pytest.raises(UserError) as caught:
        cls(component_options(cls, options)).load()
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert message.startswith(f"checkpoint {checkpoint}: `model_config` is missing, so it is read "
                              f"with the architecture of card '{card}' (1024-d); describe the "
                              f"checkpoint's architecture with `model_config: {{model_dim: ...")
    assert "set `dim" not in message and "\n" not in message


def test_a_local_sonar_checkpoint_without_model_config_at_dim_1024_asks_for_it_too(sonar):
    from lcm.errors import UserError

    options = {**sonar.local_options("encoder"), "dim": 1024}
    del options["model_config"]
    with pytest.raises(UserError) as caught:  # the dimension agrees; the tensors' shapes do not
        sonar_encoder(options).encode(["Hello."])
    assert str(caught.value).startswith(f"checkpoint {sonar.text_encoder_path}: `model_config` is "
                                        f"missing, so it is read with the architecture of card "
                                        f"'text_sonar_basic_encoder' (1024-d)")


def test_a_local_tokenizer_without_its_languages_asks_for_tokenizer_langs(sonar, tmp_path):
    """The model's vocabulary was built for three languages; without ``tokenizer_langs`` the
    tokenizer takes the card's 202 and yields ids the model has no embedding for."""
    from fairseq2.models.nllb.tokenizer import NllbTokenizerConfig, load_nllb_tokenizer

    from lcm.errors import UserError

    info = load_nllb_tokenizer(sonar.tokenizer_path, NllbTokenizerConfig(
        langs=["fra_Latn", "eng_Latn", "deu_Latn"], default_lang="eng_Latn")).vocab_info
    vocab = {"size": info.size, "unk_idx": info.unk_idx, "bos_idx": info.bos_idx,
             "eos_idx": info.eos_idx, "pad_idx": info.pad_idx}
    options = sonar.local_options("encoder")
    options["model_config"] = {**options["model_config"], "vocab_info": vocab}
    checkpoint = tmp_path / "three_langs.pt"
    state = torch.load(sonar.text_encoder_path, weights_only=True)
    embed = next(k for k in state if k.endswith("embed.weight"))
    state[embed] = state[embed][:info.size].clone()
    torch.save(state, checkpoint)
    options["checkpoint"] = str(checkpoint)
    with pytest.raises(UserError) as caught:
        sonar_encoder(options).encode(["Bonjour."])
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        f"tokenizer {sonar.tokenizer_path}: with the 'text_sonar_basic_encoder' card's languages "
        f"it has {sonar.vocab['size']} tokens, but the model's vocabulary has {info.size}; list "
        f"the languages the tokenizer was built with: `tokenizer_langs: [eng_Latn, ...]`")


def test_a_head_with_a_0d_parameter_is_refused_before_deepspeed_starts():
    """DeepSpeed broadcasts every parameter as bytes, which a 0-d tensor cannot be viewed as
    ("self.dim() cannot be 0 to view Float as Byte"); a plugin head's scalar gate is named."""
    from lcm.errors import UserError
    from lcm.train.engine import create_engine
    from lcm.train.options import TrainOptions

    model = toy_model()
    model.head.gate = torch.nn.Parameter(torch.tensor(0.5))
    with pytest.raises(UserError) as caught:
        create_engine(model, TrainOptions(), 4, context=None)
    assert caught.value.exit_code == 2
    assert str(caught.value) == ("parameter 'head.gate' is 0-d, which DeepSpeed cannot train: give "
                                 "it shape (1,), e.g. nn.Parameter(torch.tensor([0.5])) instead of "
                                 "torch.tensor(0.5)")


def test_validation_names_the_missing_plugin_of_a_recipes_checkpoint(tmp_path):
    """`lcm recipes validate` reads the checkpoint's record: the problem is known before a run."""
    from lcm.config import load_recipe, validate_recipe

    directory = save_checkpoint(tmp_path / "model", toy_model(), toy_normalizer())
    config = directory / "config.json"
    meta = json.loads(config.read_text())
    meta["plugins"] = {"head:mse": "lcm-gated-cosine"}
    config.write_text(json.dumps(meta))
    recipe = tmp_path / "evaluate.yaml"
    recipe.write_text(f"task: evaluate\nmode: pretraining\n"
                      f"pretraining: {{checkpoint: {directory}, shards: {directory}}}\n")
    problems = validate_recipe(load_recipe(recipe), registry_without("mse"), str(recipe)).problems
    assert f"pretraining.checkpoint: {directory}: head 'mse' is not installed: the checkpoint was trained with " \
           f"plugin package lcm-gated-cosine (pip install it)" in problems
    assert not any("is not installed" in p
                   for p in validate_recipe(load_recipe(recipe), get_registry()).problems)


def test_a_checkpoint_whose_plugin_is_installed_but_broken_says_it_failed_to_load(tmp_path):
    from lcm.registry import PluginFailure

    directory = save_checkpoint(tmp_path / "model", toy_model(), toy_normalizer())
    config = directory / "config.json"
    meta = json.loads(config.read_text())
    meta["plugins"] = {"head:mse": "lcm-gated-cosine"}
    config.write_text(json.dumps(meta))
    registry = registry_without("mse")
    registry.failures.append(PluginFailure("gated", "lcm_gated_cosine", "lcm-gated-cosine", "0.1",
                                           "ImportError: No module named 'scipy'"))
    with pytest.raises(Exception) as caught:
        load_checkpoint(directory, registry)
    message = str(caught.value)
    assert "not installed" not in message
    assert message.startswith("unknown head 'mse'; known heads: ")
    assert message.endswith("(plugin package lcm-gated-cosine failed to load: ImportError: No "
                            "module named 'scipy')")
