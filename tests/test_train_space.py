"""A learned concept space: ``train_space`` trains MiniLM's encoder (its top layer) and a tiny
decoder together until the toy corpus comes back word for word through the ``learned`` encoder
and decoder plugins; a resumed run ends bit-identical; the anchor weight keeps the space near
MiniLM's; the space's components refuse another space's; ``round_trip`` writes its fields."""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lcm.components import component_options
from lcm.registry import build_registry
from lcm.plugins.learned.decoder import LearnedDecoder
from lcm.plugins.learned.space.encoder import LearnedEncoder
from tests._data_fixtures import run_lcm, write_recipe

TRAINED = 8  # sentences the toy space learns by heart


def space_recipe(directory: Path, shards: Path, output: Path, steps: int, anchor: float = 1.0,
                 checkpoint_every: int | None = None, lr: float = 3e-3,
                 evaluate: bool = True, robust: float = 0.0) -> Path:
    """``robust``: the rate of input masking and of latent dropout (0: the toy memorises)."""
    return write_recipe(directory / f"{output.name}.yaml", (
        "task: train_space\n"
        f"output: {output}\n"
        f"data: {{shards: {shards}, batch_size: 8, max_sentences: {TRAINED}, noise_levels: [0.0]}}\n"
        f"encoder: {{base: minilm, trainable_layers: 1, input_mask_rate: {robust}, "
        f"latent_dropout: {robust}, space_name: toy_ae}}\n"
        "decoder: {base: random, hidden_size: 64, num_layers: 2, num_heads: 2, "
        "intermediate_size: 128, prefix_hidden: 128, max_tokens: 24}\n"
        f"anchor_weight: {anchor}\n"
        f"train: {{steps: {steps}, lr: {lr}, warmup_steps: 5, checkpoint_every: "
        f"{checkpoint_every or steps}, keep_checkpoints: 3, log_every: 5, export_dtype: fp32, "
        "seed: 0}\n"
        "distributed: {cpu_threads: 2}\n"
        + (f"evaluation: {{shards: {shards}, sentences: {TRAINED}, noise_levels: [0.0], "
           "encoder: {name: minilm}}\n" if evaluate else "")))


def sentences_of(source: Path) -> list[str]:
    from lcm.data.shards import iter_documents

    return [s for doc in iter_documents(source) for s in doc.sentences][:TRAINED]


def plugins_of(space: Path) -> tuple[LearnedEncoder, LearnedDecoder]:
    registry = build_registry()
    encoder = LearnedEncoder(component_options(LearnedEncoder, {"model": str(space)}, registry))
    decoder = LearnedDecoder(component_options(LearnedDecoder, {"model": str(space),
                                                                "candidates": 1}, registry))
    return encoder, decoder


@pytest.fixture(scope="module")
def toy_space(prepared_sample, tmp_path_factory):
    work = tmp_path_factory.mktemp("space")
    output = work / "toy"
    result = run_lcm("run", str(space_recipe(work, prepared_sample.shards, output, steps=150)))
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


def test_train_space_reproduces_its_training_sentences_through_the_plugins(toy_space,
                                                                           prepared_sample):
    space, result = toy_space
    sentences = sentences_of(prepared_sample.shards)
    encoder, decoder = plugins_of(space)
    vectors = encoder.encode(sentences)
    assert vectors.shape == (TRAINED, 384)
    assert decoder.decode(vectors) == sentences
    assert "exact match 1.00" in result.stdout
    nll = re.search(r"noise 0\.00: ([0-9.]+) nats/token", result.stdout)
    assert nll and float(nll.group(1)) < 0.5, result.stdout  # it memorised its sentences
    curve = list(csv.DictReader((space.parent / "toy-training" / "logs" / "heldout.csv").open()))
    assert curve and all(math.isfinite(float(row["nll_per_token"])) for row in curve)
    assert "minilm_ae" not in result.stdout and "toy_ae (384-d)" in result.stdout
    recorded = json.loads((space / "concept_space.json").read_text())
    assert recorded == {"name": "toy_ae", "dim": 384}
    assert (space / "encoder" / "modules.json").is_file()  # a sentence-transformers folder


def test_a_resumed_space_training_ends_bit_identical(prepared_sample, tmp_path):
    shards = prepared_sample.shards
    whole = tmp_path / "whole"
    result = run_lcm("run", str(space_recipe(tmp_path, shards, whole, steps=8, checkpoint_every=4,
                                             evaluate=False, robust=0.15)))
    assert result.returncode == 0, result.stderr[-2000:]
    halfway = whole.with_name("whole-training") / "checkpoints" / "step_00000004"
    resumed = tmp_path / "resumed"
    result = run_lcm("run", str(space_recipe(tmp_path, shards, resumed, steps=8, checkpoint_every=4,
                                             evaluate=False, robust=0.15)),
                     f"train.resume={halfway}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming from" in result.stderr
    for name in ("model.safetensors", "encoder/model.safetensors"):
        expected, got = load_file(str(whole / name)), load_file(str(resumed / name))
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key], got[key]), (name, key)


def _anchor_cosine(space: Path, sentences: list[str], minilm_model) -> float:
    encoder, _ = plugins_of(space)
    base = minilm_model.encode(sentences, convert_to_tensor=True).float()
    return float(torch.nn.functional.cosine_similarity(encoder.encode(sentences), base).mean())


def test_the_anchor_weight_keeps_the_space_near_minilm(prepared_sample, tmp_path, minilm_model):
    shards, sentences = prepared_sample.shards, sentences_of(prepared_sample.shards)
    cosines = {}
    for weight in (0.0, 20.0):
        output = tmp_path / f"anchor_{int(weight)}"
        result = run_lcm("run", str(space_recipe(tmp_path, shards, output, steps=10,
                                                 anchor=weight, lr=1e-2, evaluate=False)))
        assert result.returncode == 0, result.stderr[-2000:]
        cosines[weight] = _anchor_cosine(output, sentences, minilm_model)
    assert cosines[20.0] > cosines[0.0] + 0.01, cosines
    assert cosines[20.0] > 0.95, cosines


def test_a_space_encoder_with_another_spaces_decoder_is_refused(toy_space, tmp_path):
    space, _ = toy_space
    source = tmp_path / "in.txt"
    source.write_text("The lighthouse stood at the cliff.\n", encoding="utf-8")
    recipe = write_recipe(tmp_path / "rt.yaml", (
        "task: round_trip\n"
        f"input: {source}\noutput: {tmp_path / 'out.jsonl'}\n"
        f"encoder: {{name: learned, model: {space}}}\n"
        "decoder: {name: learned, model: models/decoder_minilm}\n"))
    result = run_lcm("run", str(recipe))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "toy_ae" in lines[0] and "minilm" in lines[0], lines


def test_round_trip_writes_source_decoded_and_cosine_per_line(toy_space, prepared_sample,
                                                              tmp_path):
    space, _ = toy_space
    sentences = sentences_of(prepared_sample.shards)
    source = tmp_path / "in.txt"
    source.write_text("\n".join(sentences[:3]) + "\n\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    result = run_lcm("run", "recipes/round_trip.yaml", f"input={source}", f"output={output}",
                     f"encoder={{name: learned, model: {space}}}", f"decoder.model={space}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [set(row) for row in rows] == [{"source", "decoded", "cosine"}] * 3
    assert [row["decoded"] for row in rows] == sentences[:3]
    assert all(row["cosine"] == pytest.approx(1.0, abs=1e-3) for row in rows)
    assert "BLEU 100.0 against the source, exact match 100.0%, round-trip cosine 1.000; " \
           "skipped: 1 empty document" in result.stdout
