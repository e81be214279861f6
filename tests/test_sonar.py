"""SONAR plugins against sonar's own pipelines, with tiny random-weight models loaded from disk
through asset cards exactly like a user's checkpoint (ways 2 and 3), plus their failure paths."""
from __future__ import annotations

import json
import time

import pytest
import torch
import yaml

from _sonar_fixtures import DIM, build_assets, speech_recording
from lcm.cli import main as lcm_main
from lcm.components import component_options
from lcm.fields import require_valid
from lcm.data.shards import Manifest, iter_documents
from lcm.errors import UserError, WeightsUnavailableError
from lcm.plugins.audio import load_audio, segment_by_silence
from lcm.plugins.decoders.sonar_text import SonarTextDecoder
from lcm.plugins.encoders.sonar_speech import SonarSpeechEncoder
from lcm.plugins.encoders.sonar_text import SonarTextEncoder
from lcm.plugins.sonar.batching import length_sorted_batches
from lcm.ui import Terminal, using

SENTENCES = [
    "Hi.",
    "The quick brown fox jumps over the lazy dog, then runs far away into the forest.",
    "Le chien.",
    "Concepts are sentences; a model predicts the next one.",
    "Speech and text share one embedding space in SONAR, the paper says, for two hundred languages.",
    "Der Fuchs.",
    "El rápido zorro marrón salta.",
]
WAYS = ["local_options", "card_options"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return build_assets(tmp_path_factory.mktemp("sonar"))


def make(cls, options, **extra):
    return cls(component_options(cls, {**options, **extra}))


# --------------------------------------------------------------------------- text encoder

@pytest.mark.parametrize("way", WAYS)
def test_text_vectors_equal_sonar_pipeline_with_length_sorted_batches(assets, way):
    from sonar.inference_pipelines.text import TextToEmbeddingModelPipeline

    reference = TextToEmbeddingModelPipeline(encoder=assets.text_encoder, tokenizer=assets.tokenizer)
    expected = reference.predict(SENTENCES, source_lang="eng_Latn")
    # A small budget forces several batches of mixed lengths; order must come back intact.
    encoder = make(SonarTextEncoder, getattr(assets, way)("encoder"), batch_size=3, max_tokens=60)
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), DIM)
    torch.testing.assert_close(vectors, expected, atol=1e-5, rtol=1e-4)
    assert encoder.concept_space(encoder.config).dim == DIM


def test_source_language_reaches_the_tokenizer(assets):
    from sonar.inference_pipelines.text import TextToEmbeddingModelPipeline

    reference = TextToEmbeddingModelPipeline(encoder=assets.text_encoder, tokenizer=assets.tokenizer)
    expected = reference.predict(SENTENCES[:3], source_lang="fra_Latn")
    vectors = make(SonarTextEncoder, assets.local_options("encoder"), source_lang="fra_Latn").encode(SENTENCES[:3])
    torch.testing.assert_close(vectors, expected, atol=1e-5, rtol=1e-4)
    english = make(SonarTextEncoder, assets.local_options("encoder")).encode(SENTENCES[:3])
    assert not torch.allclose(vectors, english)


def test_length_sorted_batches_respect_limits():
    lengths = [5, 40, 3, 17, 17, 90, 1, 8]
    batches = length_sorted_batches(lengths, max_items=3, max_tokens=60)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 60


def test_long_sentence_is_truncated_and_counted(assets, capsys):
    from sonar.inference_pipelines.text import TextToEmbeddingModelPipeline

    long = ("word " * 2000)[:10_000]
    encoder = make(SonarTextEncoder, assets.local_options("encoder"))
    with using(Terminal()) as terminal:  # a run's own terminal: its notes start at none
        vectors = encoder.encode([long, "Short one."])
    assert "note: sonar_text: 1 of 2 sentence(s) cut to 64 tokens" in capsys.readouterr().err
    assert terminal.notes == {"sentences cut to the encoder's length": 1}
    reference = TextToEmbeddingModelPipeline(encoder=assets.text_encoder, tokenizer=assets.tokenizer)
    with pytest.warns(UserWarning, match="truncated"):
        expected = reference.predict([long, "Short one."], source_lang="eng_Latn")
    torch.testing.assert_close(vectors, expected, atol=1e-5, rtol=1e-4)


def test_empty_sentence_is_refused(assets):
    encoder = make(SonarTextEncoder, assets.local_options("encoder"))
    with pytest.raises(UserError, match="input 1 is an empty sentence"):
        encoder.encode(["Fine.", "   "])
    assert encoder.encode([]).shape == (0, DIM)


def test_unknown_language_code_suggests_the_right_one():
    with pytest.raises(UserError, match="'fra_latn'; did you mean fra_Latn"):
        require_valid(SonarTextEncoder.Config(source_lang="fra_latn"), "encoder")
    with pytest.raises(UserError, match="did you mean deu_Latn"):
        require_valid(SonarTextDecoder.Config(target_lang="deu"), "decoder")


def test_recipe_validation_reports_bad_language(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "task": "round_trip", "input": str(tmp_path), "output": str(tmp_path / "o.jsonl"),
        "encoder": {"name": "sonar_text", "source_lang": "english"},
        "decoder": {"name": "sonar_text", "strategy": "greedy"}}))
    assert lcm_main(["recipes", "validate", str(recipe)]) == 2
    out = capsys.readouterr().out
    assert "encoder: source_lang: unknown language code 'english'" in out
    assert "decoder.strategy: 'greedy' is not one of beam, top_p, top_k" in out


def test_dim_must_match_the_model(assets):
    encoder = make(SonarTextEncoder, {**assets.local_options("encoder"), "dim": 1024})
    with pytest.raises(UserError, match="describes a 32-d model.*set `dim: 32`"):
        encoder.encode(["Hello."])


# --------------------------------------------------------------------------- weights unreachable

def test_default_card_offline_is_weights_unavailable_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    SonarTextEncoder.Config()  # the defaults are valid
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as err:
        SonarTextEncoder().load()
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "text_sonar_basic_encoder" in message and "network is off" in message
    assert "`checkpoint: PATH`" in message and "`cards_dir: DIR`" in message


def test_unknown_card_is_weights_unavailable(assets):
    with pytest.raises(WeightsUnavailableError, match="no fairseq2 asset card named 'no_such_card'"):
        make(SonarSpeechEncoder, assets.card_options("speech"), card="no_such_card").load()


def test_missing_local_file_is_weights_unavailable(assets, tmp_path):
    card = tmp_path / "cards"
    card.mkdir()
    (card / "c.yaml").write_text(yaml.safe_dump({
        "name": "gone", "base": "text_sonar_basic_decoder",
        "checkpoint": (tmp_path / "gone.pt").as_uri(), "tokenizer": assets.tokenizer_path.as_uri()}))
    with pytest.raises(WeightsUnavailableError, match="gone.pt, the checkpoint of asset card 'gone', does not exist"):
        make(SonarTextDecoder, {"card": "gone", "cards_dir": str(card)}).load()


# --------------------------------------------------------------------------- decoder

@pytest.mark.parametrize("way", WAYS)
def test_decoder_output_equals_sonar_pipeline(assets, way):
    from sonar.inference_pipelines.text import EmbeddingToTextModelPipeline

    vectors = torch.randn(2, DIM, generator=torch.Generator().manual_seed(1))
    reference = EmbeddingToTextModelPipeline(assets.text_decoder, assets.tokenizer)
    expected = reference.predict(vectors, target_lang="fra_Latn", beam_size=2, max_gen_len=(0, 8))
    decoder = make(SonarTextDecoder, getattr(assets, way)("decoder"), beam_size=2, max_len=8)
    assert decoder.decode(vectors, "fra_Latn") == expected
    assert any(expected)  # random weights still emit tokens


def test_sampling_decoder_equals_pipeline_with_the_same_sampler_and_seed(assets):
    from fairseq2.generation.sampling import TopKSampler
    from sonar.inference_pipelines.text import EmbeddingToTextModelPipeline

    vectors = torch.randn(3, DIM, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(7)
    expected = EmbeddingToTextModelPipeline(assets.text_decoder, assets.tokenizer).predict(
        vectors, target_lang="deu_Latn", sampler=TopKSampler(5), max_gen_len=(0, 10))
    decoder = make(SonarTextDecoder, assets.local_options("decoder"), strategy="top_k", top_k=5,
                   max_len=10, seed=7, target_lang="deu_Latn")
    assert decoder.decode(vectors) == expected


def test_token_nll_equals_each_sentence_scored_alone_and_trains_only_the_concept(assets):
    """``token_nll`` (the capability a head trains through) batches padded sentences: each
    sentence's score equals fairseq2's own forward over that sentence alone; gradients reach
    the concepts and never the frozen decoder."""
    from fairseq2.nn import BatchLayout

    decoder = make(SonarTextDecoder, assets.local_options("decoder"), target_lang="fra_Latn")
    vectors = torch.randn(3, DIM, generator=torch.Generator().manual_seed(3), requires_grad=True)
    texts = [SENTENCES[0], SENTENCES[2], "Concepts are sentences."]
    nll, counts = decoder.token_nll(vectors, texts)
    nll.sum().backward()
    assert vectors.grad is not None and vectors.grad.abs().sum() > 0
    frozen = decoder._model.parameters()  # the weights loaded from the card, not the fixture's
    assert all(p.grad is None and not p.requires_grad for p in frozen)

    encode = assets.tokenizer.create_encoder(task="translation", lang="fra_Latn", mode="target")
    for i, text in enumerate(texts):
        tokens = encode(text)[None]  # (1, L): [eos, fra_Latn, ..., eos]
        source = vectors[i:i + 1, None].detach()
        with torch.no_grad():
            logits = assets.text_decoder(source, BatchLayout.of(source), tokens[:, :-1],
                                         BatchLayout.of(tokens[:, :-1]))
        log_probs = logits.log_softmax(-1)[0, 1:]  # the language tag is forced, not scored
        expected = -log_probs.gather(1, tokens[0, 2:, None]).sum()
        assert int(counts[i]) == tokens.shape[1] - 2
        torch.testing.assert_close(nll[i].detach(), expected, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- speech

@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return speech_recording(tmp_path_factory.mktemp("speech"), [
        "Hello there.", "This sentence is quite a bit longer than the first one.", "Bye."])


@pytest.mark.parametrize("way", WAYS)
def test_speech_vectors_equal_sonar_pipeline(assets, recording, way):
    from sonar.inference_pipelines.speech import SpeechToEmbeddingModelPipeline

    utterances = segment_by_silence(load_audio(recording[0]))
    assert len(utterances) == 3
    waveforms = [torch.from_numpy(u.samples).unsqueeze(0) for u in utterances]
    expected = SpeechToEmbeddingModelPipeline(encoder=assets.speech_encoder).predict(waveforms, batch_size=1)
    encoder = make(SonarSpeechEncoder, getattr(assets, way)("speech"), batch_size=2)
    torch.testing.assert_close(encoder.encode(utterances), expected, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- tasks end to end

def _write_recipe(path, body):
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return str(path)


def test_round_trip_recipe_runs_with_local_files(assets, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("The lighthouse stood at the cliff.\n\nSailors trusted it.\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    recipe = _write_recipe(tmp_path / "rt.yaml", {
        "task": "round_trip", "input": str(source), "output": str(out),
        "target_langs": ["fra_Latn", "deu_Latn"],
        "encoder": {"name": "sonar_text", **assets.local_options("encoder")},
        "decoder": {"name": "sonar_text", **assets.card_options("decoder"), "max_len": 8}})
    assert lcm_main(["run", recipe]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["source"], r["target_lang"]) for r in rows] == [
        ("The lighthouse stood at the cliff.", "fra_Latn"), ("Sailors trusted it.", "fra_Latn"),
        ("The lighthouse stood at the cliff.", "deu_Latn"), ("Sailors trusted it.", "deu_Latn")]


def test_round_trip_refuses_non_utf8_input(assets, tmp_path, capsys):
    source = tmp_path / "latin1.txt"
    source.write_bytes("Caf\xe9 au lait.\n".encode("latin-1"))
    recipe = _write_recipe(tmp_path / "rt.yaml", {
        "task": "round_trip", "input": str(source), "output": str(tmp_path / "o.jsonl"),
        "encoder": {"name": "sonar_text", **assets.local_options("encoder")},
        "decoder": {"name": "sonar_text", **assets.local_options("decoder")}})
    assert lcm_main(["run", recipe]) == 2
    err = capsys.readouterr().err.strip()
    assert str(source) in err and "UTF-8" in err and len(err.splitlines()) == 1


def test_offline_default_cards_fail_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = tmp_path / "in.txt"
    source.write_text("Hello.\n")
    recipe = _write_recipe(tmp_path / "rt.yaml", {
        "task": "round_trip", "input": str(source), "output": str(tmp_path / "o.jsonl"),
        "encoder": {"name": "sonar_text"}, "decoder": {"name": "sonar_text"}})  # default cards
    assert lcm_main(["run", recipe]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: the checkpoint of asset card 'text_sonar_basic_encoder'")


def test_encode_audio_recipe_writes_one_document_per_recording(assets, recording, tmp_path):
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    samples, rate = sf.read(recording[0], dtype="float32")
    sf.write(folder / "a.wav", samples, rate)
    sf.write(folder / "sub" / "b.flac", np.stack([samples, samples], axis=1), rate)
    (folder / "noise.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    output = tmp_path / "shards"
    body = {"task": "encode_audio", "input": str(folder), "output": str(output),
            "encoder": {"name": "sonar_speech", **assets.local_options("speech")}, "on_error": "skip"}
    assert lcm_main(["run", _write_recipe(tmp_path / "a.yaml", body)]) == 0
    manifest = Manifest.read(output)
    assert (manifest.documents, manifest.sentences) == (2, 6)
    assert manifest.skipped == {"not a readable audio file (.wav, .flac, .ogg, .mp3)": 1}
    docs = {d.id: d for d in iter_documents(output)}
    assert set(docs) == {"a", "sub/b"}
    times = docs["a"].meta["utterances"]
    assert len(times) == 3 and all(s < e for s, e in times)
    assert docs["a"].sentences[0].startswith("[speech ")
    np.testing.assert_allclose(docs["a"].vectors, docs["sub/b"].vectors, atol=2e-3)

    body["on_error"] = "fail"
    assert lcm_main(["run", _write_recipe(tmp_path / "b.yaml", body)]) == 2


def test_a_local_tokenizer_with_its_own_languages_loads_with_tokenizer_langs(assets, tmp_path):
    from fairseq2.data.tokenizers import VocabularyInfo
    from fairseq2.models.nllb.tokenizer import NllbTokenizerConfig, load_nllb_tokenizer
    from sonar.inference_pipelines.text import TextToEmbeddingModelPipeline
    from sonar.models.sonar_text import get_sonar_text_encoder_hub
    from sonar.models.sonar_text.factory import _create_sonar_text_encoder_model

    from _sonar_fixtures import TEXT_ENCODER_OVERRIDES, _replace

    langs = ["fra_Latn", "eng_Latn", "deu_Latn"]
    tokenizer = load_nllb_tokenizer(assets.tokenizer_path,
                                    NllbTokenizerConfig(langs=langs, default_lang="eng_Latn"))
    info = tokenizer.vocab_info
    vocab = {"size": info.size, "unk_idx": info.unk_idx, "bos_idx": info.bos_idx,
             "eos_idx": info.eos_idx, "pad_idx": info.pad_idx}
    config = _replace(get_sonar_text_encoder_hub().get_arch_config("basic"),
                      {**TEXT_ENCODER_OVERRIDES, "vocab_info": VocabularyInfo(**vocab)})
    torch.manual_seed(1)
    model = _create_sonar_text_encoder_model(config).eval()
    torch.save(model.state_dict(), tmp_path / "three_langs.pt")
    options = {**assets.local_options("encoder"), "checkpoint": str(tmp_path / "three_langs.pt"),
               "model_config": {**TEXT_ENCODER_OVERRIDES, "vocab_info": vocab},
               "tokenizer_langs": langs}
    vectors = make(SonarTextEncoder, options, source_lang="fra_Latn").encode(SENTENCES[:3])
    expected = TextToEmbeddingModelPipeline(encoder=model, tokenizer=tokenizer).predict(
        SENTENCES[:3], source_lang="fra_Latn")
    torch.testing.assert_close(vectors, expected, atol=1e-5, rtol=1e-4)
