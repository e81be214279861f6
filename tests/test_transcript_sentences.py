"""A natural voice pauses at commas: the Whisper cascade re-splits utterance transcripts into
sentences with their time spans, and its segmentation is set from a summarize recipe."""
from __future__ import annotations

from pathlib import Path

import pytest

from lcm.config import resolve_recipe
from lcm.registry import get_registry
from lcm.plugins.speech.sentences import TimedSentence, sentences_with_times

REPO = Path(__file__).resolve().parents[1]


def test_half_sentences_cut_at_pauses_become_whole_sentences_with_their_spans():
    texts = ["The model was trained on two cores,", "which took an hour.",
             "It works. Then it stopped", "for good."]
    times = [(0.0, 2.0), (2.5, 4.0), (5.0, 7.0), (7.5, 8.0)]
    found = sentences_with_times(texts, times)
    assert [s.text for s in found] == ["The model was trained on two cores, which took an hour.",
                                       "It works.", "Then it stopped for good."]
    assert found[0] == TimedSentence(found[0].text, 0.0, 4.0)
    assert found[1].start_s == 5.0 and 5.0 < found[1].end_s < found[2].start_s < 7.0
    assert found[2].end_s == 8.0


def test_one_sentence_per_utterance_keeps_the_utterance_spans():
    found = sentences_with_times(["Hello there.", "Good bye."], [(0.5, 1.5), (2.0, 3.0)])
    assert found == [TimedSentence("Hello there.", 0.5, 1.5), TimedSentence("Good bye.", 2.0, 3.0)]


def test_speech_segmentation_is_set_from_the_summarize_recipe():
    resolved = resolve_recipe(REPO / "recipes" / "speech_summarize.yaml",
                              ["encoder.segmentation.min_silence_s=0.5", "encoder.per_sentence=false"],
                              get_registry())
    options = resolved.config.encoder.options  # resolved: typed, every default filled in
    assert options.segmentation.min_silence_s == 0.5 and options.per_sentence is False


def test_a_long_pause_ends_a_sentence_whatever_the_punctuation():
    texts = ["The keeper climbed the stairs every night,", "ships sailed past the rocks."]
    assert [s.text for s in sentences_with_times(texts, [(0.0, 2.0), (2.3, 4.0)])] == [
        "The keeper climbed the stairs every night, ships sailed past the rocks."]
    assert sentences_with_times(texts, [(0.0, 2.0), (2.7, 4.0)]) == [
        TimedSentence(texts[0], 0.0, 2.0), TimedSentence(texts[1], 2.7, 4.0)]
