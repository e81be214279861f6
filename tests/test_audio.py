"""The audio front end on real synthesised speech (espeak-ng) and on broken files."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from _sonar_fixtures import speech_recording
from lcm.fields import require_valid
from lcm.errors import InputFileError, UserError
from lcm.plugins.audio import SAMPLE_RATE, SegmentConfig, load_audio, segment_by_silence
from lcm.plugins.audio.io import resample

SENTENCES = ["The lighthouse stood at the edge of the cliff.",
             "Every night its lamp turned slowly over the dark water.",
             "Sailors trusted it."]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return speech_recording(tmp_path_factory.mktemp("speech"), SENTENCES)


def test_segmentation_finds_each_sentence_with_its_times(recording):
    path, spans = recording
    audio = load_audio(path)
    assert audio.sample_rate == SAMPLE_RATE and audio.original_rate == 22050
    utterances = segment_by_silence(audio)
    assert len(utterances) == len(SENTENCES)
    for u, (start, end) in zip(utterances, spans):
        # espeak pads each sentence with a little silence of its own, so the voiced part is
        # inside the synthesised span (give or take the padding).
        assert start - 0.15 <= u.start_s <= start + 0.3
        assert end - 0.5 <= u.end_s <= end + 0.15
        assert len(u.samples) == pytest.approx((u.end_s - u.start_s) * SAMPLE_RATE, abs=2)


def test_five_sentences_five_utterances(tmp_path):
    path, _ = speech_recording(tmp_path, [f"This is sentence number {n}." for n in
                                          ("one", "two", "three", "four", "five")], pause_s=0.6)
    assert len(segment_by_silence(load_audio(path))) == 5


def test_pauses_shorter_than_min_silence_do_not_split(recording):
    path, _ = recording
    assert len(segment_by_silence(load_audio(path), SegmentConfig(min_silence_s=2.0))) == 1


def test_long_utterances_are_cut_below_the_maximum(recording):
    path, _ = recording
    config = SegmentConfig(min_silence_s=2.0, max_utterance_s=1.5, padding_s=0.0)
    pieces = segment_by_silence(load_audio(path), config)
    assert len(pieces) > 3
    assert all(p.end_s - p.start_s <= 1.5 + 1e-6 for p in pieces)
    assert all(a.end_s <= b.start_s + 1e-6 for a, b in zip(pieces, pieces[1:]))


def test_stereo_44k_is_downmixed_and_resampled(recording, tmp_path):
    path, _ = recording
    mono = load_audio(path)
    samples, rate = sf.read(path, dtype="float32")
    hi = resample(samples, rate, 44_100)
    stereo = tmp_path / "stereo.flac"
    sf.write(stereo, np.stack([hi, 0.5 * hi], axis=1), 44_100)
    audio = load_audio(stereo)
    assert (audio.original_rate, audio.original_channels, audio.sample_rate) == (44_100, 2, 16_000)
    assert audio.samples.ndim == 1
    assert audio.duration_s == pytest.approx(mono.duration_s, abs=0.01)
    # the mean of the channels is 0.75 × the signal
    n = min(len(audio.samples), len(mono.samples))
    assert np.corrcoef(audio.samples[:n], mono.samples[:n])[0, 1] > 0.99
    assert len(segment_by_silence(audio)) == len(SENTENCES)


@pytest.mark.parametrize("suffix", [".ogg", ".mp3"])
def test_compressed_formats_load(recording, tmp_path, suffix):
    path, _ = recording
    samples, rate = sf.read(path, dtype="float32")
    target = tmp_path / f"speech{suffix}"
    sf.write(target, samples, rate)
    audio = load_audio(target)
    assert audio.duration_s == pytest.approx(len(samples) / rate, abs=0.1)
    assert len(segment_by_silence(audio)) == len(SENTENCES)


def _write_bad(kind: str, directory, recording_path):
    path = directory / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "zero_length":
        sf.write(path, np.zeros(0, dtype=np.float32), 16_000)
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4000))
    elif kind == "truncated":
        raw = recording_path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "silent":
        sf.write(path, np.zeros(16_000, dtype=np.float32), 16_000)
    return path


@pytest.mark.parametrize("kind, message", [
    ("empty", "empty file"), ("zero_length", "no audio samples"),
    ("random_bytes", "not a readable audio file"), ("truncated", "truncated"),
    ("silent", "silent"),
])
def test_bad_files_give_one_line_naming_the_file(recording, tmp_path, kind, message):
    path = _write_bad(kind, tmp_path, recording[0])
    with pytest.raises(InputFileError) as err:
        segment_by_silence(load_audio(path))
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_segment_config_is_checked():
    with pytest.raises(UserError, match="threshold_db"):
        require_valid(SegmentConfig(threshold_db=10), "segmentation")
    with pytest.raises(UserError, match="max_utterance_s"):
        require_valid(SegmentConfig(min_utterance_s=1.0, max_utterance_s=1.5), "segmentation")
