"""Summarisation: pair shards from prepare, the supervised training style through ``lcm run``,
and the shipped model in models/summarizer."""
from __future__ import annotations

import json
import re

import numpy as np
import torch

from lcm.data.instruction import FRAMING_FILE, SOURCE_LENGTH_KEY, Framing
from lcm.data.segment import segment_document
from lcm.data.shards import Manifest, iter_documents
from lcm.registry import get_registry
from lcm.train.data import pad_masks, pad_windows, pair_window
from tests._data_fixtures import REPO, run_lcm, write_recipe
from tests._summarizer_fixtures import noisy_source_pairs, write_pair_shards
from tests._train_fixtures import run_lcm as run_lcm_clean
from tests._train_fixtures import train_recipe, write_yaml

SHIPPED = REPO / "models" / "summarizer"


def test_prepare_with_a_target_field_writes_pairs_and_counts_what_it_skips(tmp_path):
    pairs = [{"id": "a", "text": "The cat sat on the mat. It was warm there. Then it slept.",
              "summary": "A cat slept on a warm mat."},
             {"id": "b", "text": "Rain fell all day. The river rose.", "summary": "It rained. Floods came."},
             {"id": "c", "text": "No summary here.", "summary": "  "},
             {"id": "d", "text": "No summary field."},
             {"id": "e", "text": " ", "summary": "An empty source."}]
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    recipe = write_recipe(tmp_path / "prepare.yaml", (
        f"task: prepare\ninput: {source}\noutput: {tmp_path / 'shards'}\ntarget_field: summary\n"
        "encoder: {name: minilm, device: cpu}\ninstruction: {source_suffix: 'Summary:'}\n"))
    result = run_lcm("run", str(recipe))
    assert result.returncode == 0, result.stderr
    manifest = Manifest.read(tmp_path / "shards")
    assert manifest.documents == 2
    assert manifest.skipped == {"no target text": 2, "empty document": 1}
    documents = list(iter_documents(tmp_path / "shards"))
    for doc, pair in zip(documents, pairs):
        source_sentences, target = segment_document(pair["text"]), segment_document(pair["summary"])
        assert doc.sentences == source_sentences + target
        assert doc.meta[SOURCE_LENGTH_KEY] == len(source_sentences)
        assert "summary" not in doc.meta  # the target is in the sentences, not repeated in meta
    framing = Framing.load(tmp_path / "shards")
    stored = json.loads((tmp_path / "shards" / FRAMING_FILE).read_text())
    assert stored["pairs"] == 2 and framing.format.source_suffix == "Summary:"
    assert framing.end.shape == framing.suffix.shape == (384,)
    assert float(np.dot(framing.end, framing.suffix)) < 0.9  # two different sentences

    text_input = tmp_path / "docs.txt"
    text_input.write_text("One line.\n")
    refused = write_recipe(tmp_path / "bad.yaml", f"task: prepare\ninput: {text_input}\n"
                                                  f"output: {tmp_path / 'x'}\ntarget_field: summary\n")
    result = run_lcm("run", str(refused))
    assert result.returncode == 2 and "target_field needs .jsonl input" in result.stderr


def test_a_pair_is_one_window_with_only_its_target_learned():
    documents, framing = noisy_source_pairs(2)
    long_source, long_target = documents[-2], documents[-1]
    sequence, learned, cut = pair_window(long_source.vectors, 15, framing, max_concepts=12)
    assert cut and len(sequence) == 12  # 8 source concepts kept, 3 target, 1 end
    assert learned.tolist() == [False] * 8 + [True] * 4
    np.testing.assert_array_equal(sequence[:8], long_source.vectors[:8])
    np.testing.assert_allclose(sequence[-1], framing.end, atol=1e-2)
    assert pair_window(long_target.vectors, 3, framing, max_concepts=12) is None  # 12 + end
    assert pad_masks([learned[:3], learned], 12)[0].tolist() == [False] * 12


def test_supervised_style_learns_the_targets_and_ignores_noise_sources(tmp_path):
    from lcm.model.checkpoint import load_checkpoint

    documents, framing = noisy_source_pairs(40)
    shards = write_pair_shards(tmp_path / "pairs", documents, framing)
    recipe = train_recipe(shards, tmp_path / "model", steps=60, style="supervised", lr=1e-2,
                          log_every=10)
    recipe["data"].update(max_concepts=12, batch_size=8)
    result = run_lcm_clean(write_yaml(tmp_path / "train.yaml", recipe))
    assert result.returncode == 0, result.stderr
    skipped, cut = re.search(r"(\d+) windows skipped .*?, (\d+) sources cut", result.stdout).groups()
    assert int(skipped) > 0 and int(cut) > 0  # the long target skipped, the long source cut

    loaded = load_checkpoint(tmp_path / "model", get_registry())
    assert loaded.meta["extra"]["instruction"] == framing.format.to_meta()
    pairs = [pair_window(d.vectors, d.meta[SOURCE_LENGTH_KEY], framing, 12) for d in documents[:40]]
    concepts, mask = pad_windows([p[0] for p in pairs], loaded.normalizer)
    target = pad_masks([p[1] for p in pairs], concepts.shape[1])
    with torch.no_grad():
        target_loss = float(loaded.model(concepts, mask, target).loss)
        source = mask & ~target
        source_loss = float(loaded.model(concepts, source).loss)  # noise predicting noise
    assert target_loss < 0.25, target_loss
    assert source_loss > 4 * target_loss, (source_loss, target_loss)


def test_the_shipped_model_loads_and_summarises_a_short_text(tmp_path):
    from lcm.model.checkpoint import load_checkpoint

    size = sum(f.stat().st_size for f in SHIPPED.iterdir())
    assert size < 21_000_000
    loaded = load_checkpoint(SHIPPED, get_registry())
    assert (loaded.space.name, loaded.space.dim) == ("minilm", 384)
    assert loaded.meta["extra"]["instruction"]["end_sentence"]
    text = tmp_path / "paper.txt"
    sentences = ["Machine translation of low-resource languages remains difficult.",
                 "Parallel data for most language pairs is scarce.",
                 "In this paper, we propose a method that learns from monolingual text alone.",
                 "Our approach combines back-translation with a denoising objective.",
                 "Experiments on four language pairs show gains of up to 3 BLEU points.",
                 "We release our code and models."]
    text.write_text(" ".join(sentences))
    recipe = write_recipe(tmp_path / "summarize.yaml", (
        f"task: summarize\nmodel: {SHIPPED}\ninput: {text}\nas_single_document: true\n"
        f"output: {tmp_path / 'summary.json'}\nencoder: {{name: minilm, device: cpu}}\n"
        "decoder: {name: retrieval, space: minilm, dim: 384, distinct: true}\norder: source\n"))
    result = run_lcm("run", str(recipe))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())["documents"][0]["summary"]
    assert 1 <= len(summary) <= 8
    positions = [sentences.index(item["text"]) for item in summary]  # each a source sentence
    assert positions == sorted(set(positions))  # in source order, none twice


def test_a_distinct_retrieval_decoder_names_each_source_sentence_once():
    from lcm.registry import get_registry

    sentences = ["first", "second", "third"]
    vectors = torch.eye(3)
    queries = torch.tensor([[1.0, 0.1, 0.0], [0.9, 0.0, 0.2], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    decoders = {}
    for distinct in (False, True):
        decoders[distinct] = get_registry().create(
            "decoder", {"name": "retrieval", "space": "s", "dim": 3, "distinct": distinct})
        decoders[distinct].observe(sentences, vectors)
    assert decoders[False].decode(queries) == ["first", "first", "first", "third"]
    # row 2 takes its next best, row 3 the one left; row 4 finds all taken and starts over
    assert decoders[True].decode(queries) == ["first", "third", "second", "third"]


def test_fp16_export_halves_the_weights_and_loads_back_as_fp32(tmp_path):
    from safetensors.torch import load_file

    from lcm.model.checkpoint import load_checkpoint, save_checkpoint
    from tests._head_fixtures import SPACE, toy_head_model
    from tests._model_fixtures import toy_normalizer

    model = toy_head_model("two_tower", tmp_path)
    save_checkpoint(tmp_path / "fp32", model, toy_normalizer(SPACE))
    save_checkpoint(tmp_path / "fp16", model, toy_normalizer(SPACE), dtype="fp16")
    stored = load_file(str(tmp_path / "fp16" / "model.safetensors"))
    parameters = {name for name, _ in model.named_parameters()}
    assert all(stored[k].dtype == torch.float16 for k in parameters)
    assert all(stored[k].dtype == v.dtype for k, v in model.named_buffers() if k in stored)
    assert (tmp_path / "fp16" / "model.safetensors").stat().st_size < 0.6 * (
        tmp_path / "fp32" / "model.safetensors").stat().st_size
    loaded = load_checkpoint(tmp_path / "fp16", get_registry()).model
    for name, value in model.state_dict().items():
        again = loaded.state_dict()[name]
        assert again.dtype == value.dtype
        torch.testing.assert_close(again, value.half().to(value.dtype) if name in parameters else value)
