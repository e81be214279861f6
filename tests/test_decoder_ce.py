"""The ``decoder_ce`` head around its contract suite: the training batches carry each concept's
sentence (only when a head asks), a decoder without token likelihoods is refused at validation,
the frozen decoder is neither trained nor saved, a resumed run equals an uninterrupted one, and
generation refuses a decoder other than the one the model learned through."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lcm.data.normalizer import RobustScaler
from lcm.data.shards import iter_documents, load_vectors
from lcm.model.checkpoint import load_checkpoint
from lcm.model.lcm import count_parameters
from lcm.registry import get_registry
from lcm.spaces import read_space
from lcm.train.data import BatchStream
from tests._data_fixtures import run_lcm
from tests._decoder_ce_fixtures import trained_decoder
from tests._run import interrupted_after, train_in_process
from tests._summarizer_fixtures import noisy_source_pairs, write_pair_shards
from tests._train_fixtures import SPACE, train_recipe, walk_documents, write_shards, write_yaml

pytestmark = pytest.mark.usefixtures("single_thread")


def stream(shards: Path, normalizer, with_text: bool, **options) -> BatchStream:
    settings = dict(max_concepts=4, batch_size=4, shuffle_buffer=8, num_workers=0, seed=0)
    return BatchStream(shards, normalizer, with_text=with_text, **{**settings, **options})


def normalised_by_sentence(shards: Path, normalizer) -> dict[str, list[np.ndarray]]:
    table: dict[str, list[np.ndarray]] = {}
    for doc in iter_documents(shards):
        for sentence, vector in zip(doc.sentences, doc.vectors):
            table.setdefault(sentence, []).append(normalizer.normalize(vector.astype(np.float32)))
    return table


def assert_each_concept_is_its_sentences(batch, table) -> None:
    for row, texts in enumerate(batch.sentences):
        assert len(texts) == int(batch.mask[row].sum())
        for position, text in enumerate(texts):
            concept = batch.concepts[row, position].numpy()
            assert any(np.allclose(concept, v, atol=1e-5) for v in table[text]), (row, position)


def test_batches_carry_each_concepts_sentence_only_when_a_head_asks(prepared_sample):
    shards = prepared_sample.shards
    normalizer = RobustScaler.fit(load_vectors(shards), read_space(str(shards)))
    with_text = next(iter(stream(shards, normalizer, with_text=True)))
    assert_each_concept_is_its_sentences(with_text, normalised_by_sentence(shards, normalizer))
    plain = next(iter(stream(shards, normalizer, with_text=False)))
    assert plain.sentences is None and torch.equal(plain.concepts, with_text.concepts)


def test_pair_batches_lay_out_sentences_as_their_concepts_framing_included(tmp_path):
    documents, framing = noisy_source_pairs(6)  # then a long source (cut) and a long target
    shards = write_pair_shards(tmp_path / "pairs", documents, framing)
    normalizer = RobustScaler.load(shards)
    batches = list(_one_epoch(stream(shards, normalizer, with_text=True, max_concepts=12,
                                     batch_size=8, framing=framing)))
    table = normalised_by_sentence(shards, normalizer)
    end = framing.end.astype(np.float16).astype(np.float32)  # as pair_window casts it
    table[framing.format.end_sentence] = [normalizer.normalize(end)]
    rows = [texts for batch in batches for texts in batch.sentences]
    assert len(rows) == 7  # the pair whose target cannot fit is skipped, the long source cut
    assert all(texts[-1] == "End of text." for texts in rows)
    cut = next(texts for texts in rows if "pair 6 sentence 0" in texts)
    assert cut[:8] == [f"pair 6 sentence {i}" for i in range(8)]  # the first 8 sources kept
    assert cut[8:11] == [f"pair 6 sentence {i}" for i in range(15, 18)]  # then the target
    for batch in batches:
        assert_each_concept_is_its_sentences(batch, table)


def _one_epoch(batches: BatchStream):
    for batch in batches:
        if batches.position.epoch > 0:
            return
        yield batch


# ----------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> tuple[Path, Path]:
    """Toy shards and an (untrained) decoder of their space: the plumbing, not the quality."""
    work = tmp_path_factory.mktemp("decoder_ce")
    shards = write_shards(work / "shards", walk_documents(30))
    decoder = trained_decoder(work / "decoder", SPACE, RobustScaler.load(shards), steps=0)
    return shards, decoder


def ce_recipe(walk, output: Path, **train: object) -> dict:
    shards, decoder = walk
    recipe = train_recipe(shards, output, **{"steps": 6, "log_every": 2, "checkpoint_every": 3,
                                             **train})
    recipe["head"] = {"name": "decoder_ce", "decoder": {"name": "learned", "model": str(decoder)},
                      "max_sentences": 5, "mse_weight": 0.5}
    return recipe


def test_a_decoder_without_token_likelihoods_is_refused_at_validation(walk, tmp_path):
    recipe = ce_recipe(walk, tmp_path / "model")
    recipe["head"]["decoder"] = {"name": "retrieval", "bank": str(walk[0])}
    result = run_lcm("run", str(write_yaml(tmp_path / "r.yaml", recipe)))
    assert result.returncode == 2
    assert "head.decoder.name: decoder 'retrieval' lacks TokenLikelihood" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_frozen_decoder_is_neither_trained_nor_saved_and_a_resume_is_exact(
        walk, tmp_path, monkeypatch):
    whole = train_in_process(ce_recipe(walk, tmp_path / "whole"), tmp_path)
    with monkeypatch.context() as patch:
        interrupted_after(4, patch)  # the last checkpoint at step 3
        with pytest.raises(KeyboardInterrupt):
            train_in_process(ce_recipe(walk, tmp_path / "cut"), tmp_path)
    resumed = train_in_process(ce_recipe(walk, tmp_path / "cut", resume=True), tmp_path)
    # the same sentences drawn per batch (the RNG state is checkpointed): equal up to float noise
    assert resumed.last_loss == pytest.approx(whole.last_loss, rel=1e-5)

    weights = load_file(str(tmp_path / "whole" / "model.safetensors"))
    assert not any("decoder" in key or key.startswith("head.lm") for key in weights)
    assert {key.split(".")[1] for key in weights if key.startswith("head.")} == {"postnet"}
    for key, value in load_file(str(tmp_path / "cut" / "model.safetensors")).items():
        torch.testing.assert_close(value, weights[key], rtol=1e-3, atol=1e-4)  # float noise
    loaded = load_checkpoint(tmp_path / "whole", get_registry())
    assert count_parameters(loaded.model) == sum(v.numel() for v in weights.values())
    meta = json.loads((tmp_path / "whole" / "config.json").read_text())
    recorded = meta["head"]["decoder"]
    assert recorded["name"] == "learned" and recorded["model"] == str(walk[1])
    # the decoder named in the head's options is recorded with its package too
    assert meta["plugins"] == {"head:decoder_ce": "lcm", "decoder:learned": "lcm",
                               "decoder:retrieval": "lcm"}  # the hybrid's retrieval section
    assert loaded.model.head.trained_through() == {"decoder": "learned",
                                                   "model": str(walk[1].resolve())}


def test_generation_refuses_another_decoder_than_the_one_learned_through(walk, tmp_path):
    from lcm.components import resolve
    from lcm.errors import UserError
    from lcm.pipeline.checks import check_decoder

    train_in_process(ce_recipe(walk, tmp_path / "model", steps=2), tmp_path)
    head = load_checkpoint(tmp_path / "model", get_registry()).model.head
    registry = get_registry()
    same = resolve(registry, "decoder", {"name": "learned", "model": str(walk[1]), "candidates": 1})
    check_decoder(head, same.create())  # other decoding options, the same weights: accepted
    other_model = trained_decoder(tmp_path / "other", SPACE, RobustScaler.load(walk[0]), steps=0)
    for section in ({"name": "learned", "model": str(other_model)},
                    {"name": "retrieval", "bank": str(walk[0])}):
        with pytest.raises(UserError, match=r"learned through decoder 'learned' \(.*decoder\), "
                                            r"but this recipe decodes with"):
            check_decoder(head, resolve(registry, "decoder", section).create())

