"""The generative decoder: ``train_decoder`` learns to write sentences back from their vectors
(through ``lcm run`` and DeepSpeed, like ``train``), resumes exactly, and the ``learned``
decoder reranks candidates by round trip and, as a hybrid, is never farther than retrieval."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lcm.components import component_options
from lcm.data.shards import iter_documents
from lcm.errors import ConceptSpaceMismatchError
from lcm.pipeline.selector import rerank
from lcm.plugins.decoders.retrieval import RetrievalDecoder
from lcm.plugins.learned.casing import Truecaser
from lcm.plugins.learned.evaluation import round_trip_cosines
from lcm.plugins.learned.model import read_record
from lcm.plugins.encoders.minilm import MiniLMEncoder
from lcm.train.log import read_log
from tests._data_fixtures import run_lcm, write_recipe
from tests._learned_fixtures import TRAINED, learned, toy_recipe



def vectors_of(shards: Path, count: int) -> tuple[list[str], torch.Tensor]:
    documents = list(iter_documents(shards))
    sentences = [s for d in documents for s in d.sentences][:count]
    vectors = np.concatenate([d.vectors for d in documents])[:count]
    return sentences, torch.from_numpy(vectors).float()


@pytest.fixture(scope="module")
def toy(prepared_sample, tmp_path_factory):
    """The toy decoder trained to memorise its sentences (once for the module)."""
    work = tmp_path_factory.mktemp("learned")
    output = work / "toy"
    recipe = toy_recipe(work, prepared_sample.shards, output, steps=150,
                        evaluation=str(prepared_sample.shards))
    result = run_lcm("run", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


def test_train_decoder_learns_to_write_its_training_sentences(toy, prepared_sample):
    output, result = toy
    sentences, vectors = vectors_of(prepared_sample.shards, TRAINED)
    decoded = learned(output, candidates=1).decode(vectors)
    assert decoded == sentences  # case and spacing ("U.S.", "3.2%") restored too
    assert "exact match 1.00" in result.stdout
    record = read_record(output)
    assert (record.space.name, record.space.dim) == ("minilm", 384)
    assert record.training["sentences_seen"] == 150 * 8
    training = output.with_name(output.name + "-training")
    rows = read_log(training / "logs" / "train_log.csv")
    assert rows[-1]["loss"] < rows[0]["loss"] / 10
    assert (training / "logs" / "loss.png").stat().st_size > 1000


def test_a_resumed_decoder_training_equals_an_uninterrupted_one(prepared_sample, tmp_path):
    shards = prepared_sample.shards
    whole = tmp_path / "whole"
    recipe = toy_recipe(tmp_path, shards, whole, steps=20, checkpoint_every=10, noise="0.0, 0.5")
    assert run_lcm("run", str(recipe)).returncode == 0
    halfway = whole.with_name("whole-training") / "checkpoints" / "step_00000010"
    assert halfway.is_dir()

    resumed = tmp_path / "resumed"
    recipe = toy_recipe(tmp_path, shards, resumed, steps=20, checkpoint_every=10, noise="0.0, 0.5")
    result = run_lcm("run", str(recipe), f"train.resume={halfway}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stderr and "at step 10" in result.stderr

    expected, got = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)
    rows = read_log(resumed.with_name("resumed-training") / "logs" / "train_log.csv")
    assert [r["loss"] for r in rows] == [r["loss"] for r in
                                         read_log(whole.with_name("whole-training") / "logs" / "train_log.csv")]
    assert read_record(resumed).training["sentences_seen"] == 20 * 8


def test_a_decoder_of_another_space_is_refused(toy, tmp_path):
    output, _ = toy
    recipe = write_recipe(tmp_path / "generate.yaml", (
        "task: generate\n"
        f"model: {output}\n"
        "input: data/sample_docs.txt\n"
        f"output: {tmp_path / 'out.jsonl'}\n"
        "encoder: {name: sonar_text}\n"
        f"decoder: {{name: learned, model: {output}}}\n"))
    result = run_lcm("recipes", "validate", str(recipe))
    assert result.returncode == 2
    said = result.stdout + result.stderr
    assert "decoder (learned): minilm (384-d)" in said and "sonar (1024-d)" in said
    with pytest.raises(ConceptSpaceMismatchError, match="1024"):
        learned(output).decode(torch.zeros(2, 1024))


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEncoder(component_options(MiniLMEncoder, {"device": "cpu"}))


def test_reranking_keeps_the_candidate_closest_to_the_concept(toy, prepared_sample, minilm):
    output, _ = toy
    _, vectors = vectors_of(prepared_sample.shards, 20)
    decoder = learned(output, minilm, candidates=4, beam_size=4, precision="fp32")
    traced = decoder.decode_traced(vectors)
    single = learned(output, candidates=1, beam_size=4).decode(vectors)  # the best beam alone
    assert all(t.origin == "generated" and t.cosine is not None for t in traced)
    reranked = round_trip_cosines(minilm, [t.text for t in traced], vectors)
    first = round_trip_cosines(minilm, single, vectors)
    torch.testing.assert_close(reranked, torch.tensor([t.cosine for t in traced]), atol=1e-4, rtol=0)
    assert bool((reranked >= first - 1e-4).all())  # the best beam is one of the candidates
    assert bool((reranked > first + 1e-3).any())  # and reranking changed some choices


def test_bf16_reranking_ranks_the_candidates_as_fp32_does(toy, prepared_sample, minilm):
    """Under ``precision: bf16`` the candidates are re-encoded in bf16 too: the reported cosine
    is the bf16 re-encoding's, within bf16's rounding of fp32's, and the chosen candidate is
    fp32's best or one closer to it than that rounding."""
    output, _ = toy
    _, vectors = vectors_of(prepared_sample.shards, 20)
    decoder = learned(output, minilm, candidates=4, precision="bf16")
    pools = decoder.candidates(vectors)  # seeded: the very pools decode_traced draws
    by_fp32 = rerank(minilm, pools, vectors)  # re-encoded outside autocast
    by_bf16 = decoder.decode_traced(vectors)
    reported = torch.tensor([t.cosine for t in by_bf16])
    exact = round_trip_cosines(minilm, [t.text for t in by_bf16], vectors)
    torch.testing.assert_close(reported, exact, atol=2e-2, rtol=0)
    assert not torch.allclose(reported, exact, atol=1e-6, rtol=0)  # bf16 did the re-encoding
    assert all(t.text in [text for text, _ in pool] for t, pool in zip(by_bf16, pools))
    best = torch.tensor([t.cosine for t in by_fp32])
    assert bool((exact >= best - 2e-2).all())


def test_hybrid_is_never_farther_from_the_target_than_retrieval(toy, prepared_sample, minilm):
    output, _ = toy
    sentences, vectors = vectors_of(prepared_sample.shards, 60)
    generator = torch.Generator().manual_seed(7)
    targets = torch.cat([  # random directions, and sentences far off the training set, noised
        torch.nn.functional.normalize(torch.randn(12, 384, generator=generator), dim=-1),
        vectors[TRAINED:] + 0.05 * torch.randn(vectors[TRAINED:].shape, generator=generator)])
    hybrid = learned(output, minilm, hybrid=True,
                     retrieval={"name": "retrieval", "bank": str(prepared_sample.shards),
                                "observed": "ignore"})
    retrieval = RetrievalDecoder(component_options(
        RetrievalDecoder, {"bank": str(prepared_sample.shards), "observed": "ignore"}))
    chosen = hybrid.decode_traced(targets)
    looked_up = retrieval.decode(targets)
    ours = round_trip_cosines(minilm, [c.text for c in chosen], targets)
    theirs = round_trip_cosines(minilm, looked_up, targets)
    assert bool((ours >= theirs - 1e-5).all()), (ours - theirs).min()
    assert {c.origin for c in chosen} <= {"generated", "retrieved"}
    assert any(c.origin == "retrieved" for c in chosen)  # random directions: retrieval wins some


def test_surface_restoration_fixes_case_and_wordpiece_spacing():
    casing = Truecaser.fit(["Prices in the U.S. rose in Egypt.", "They met in Egypt."])
    assert casing.apply("prices in the u. s. rose 3. 2 % in egypt.") == \
        "Prices in the U.S. rose 3.2% in Egypt."
    assert casing.apply("a well - known ( 1, 000 ) list : it ' s long") == \
        "A well-known (1,000) list: it's long"


def test_an_output_folder_holding_a_users_files_is_refused_before_training(prepared_sample, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    recipe = toy_recipe(tmp_path, prepared_sample.shards, precious, steps=2)
    result = run_lcm("run", str(recipe))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {precious}: folder holds files lcm did not write; lcm never deletes those "
        "(name a new or empty folder)")
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]
    assert not precious.with_name("precious-training").exists()


def test_init_from_starts_from_a_decoders_weights_and_adds_up_what_it_saw(toy, prepared_sample,
                                                                         tmp_path):
    output, _ = toy
    further = tmp_path / "further"
    recipe = toy_recipe(tmp_path, prepared_sample.shards, further, steps=2)
    result = run_lcm("run", str(recipe), f"init_from={output}", "train.lr=1e-7",
                     "train.warmup_steps=0")
    assert result.returncode == 0, result.stderr[-3000:]
    sentences, vectors = vectors_of(prepared_sample.shards, TRAINED)
    assert learned(further, candidates=1).decode(vectors) == sentences  # the weights came along
    record = read_record(further).training
    assert record["sentences_seen"] == 150 * 8 + 2 * 8
    assert record["continued_from"]["sentences_seen"] == 150 * 8


def test_token_nll_scores_each_sentence_as_alone_and_trains_only_the_concept(toy, prepared_sample):
    """The capability a ``decoder_ce`` head learns through: a padded batch scores each sentence
    as that sentence alone would be scored; gradients reach the vectors, never the weights."""
    sentences, vectors = vectors_of(prepared_sample.shards, 4)
    decoder = learned(toy[0])
    vectors.requires_grad_(True)
    nll, counts = decoder.token_nll(vectors, sentences)
    nll.sum().backward()
    assert vectors.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in decoder._model.parameters())
    for i, sentence in enumerate(sentences):
        alone, count = decoder.token_nll(vectors[i:i + 1].detach(), [sentence])
        assert int(count) == int(counts[i]) == len(decoder._model.tokenize([sentence])["input_ids"][0]) - 1
        torch.testing.assert_close(alone[0], nll[i].detach(), rtol=1e-4, atol=1e-4)


def test_its_candidates_are_every_sample_then_the_retrieved_sentence(toy, prepared_sample, minilm):
    """What the summary selector chooses among: the samples, and (hybrid) retrieval's pick from
    the recipe's own retrieval section, which may not work in another space."""
    output, _ = toy
    sentences, vectors = vectors_of(prepared_sample.shards, 3)
    hybrid = learned(output, minilm, hybrid=True, candidates=3,
                     retrieval={"name": "retrieval", "observed": "include"})
    hybrid.observe(sentences, vectors)
    pools = hybrid.candidates(vectors)
    assert [[origin for _, origin in pool] for pool in pools] == \
        [["generated"] * 3 + ["retrieved"]] * 3
    assert [pool[-1][0] for pool in pools] == sentences  # each vector's own sentence
    with pytest.raises(ConceptSpaceMismatchError, match="its retrieval decoder"):
        learned(output, minilm, hybrid=True,
                retrieval={"name": "retrieval", "space": "sonar", "dim": 1024})
