"""Sentence segmentation (sentencex) and the paper's capped splitting."""
from __future__ import annotations

import pytest

from lcm.data.segment import cap_sentence, segment_document, split_sentences


@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith arrived late. He apologised.", ["Dr. Smith arrived late.", "He apologised."]),
    ("She moved to the U.S. in 2010. It rained.", ["She moved to the U.S. in 2010.", "It rained."]),
    ("Prices rose 3.2% last year. Wages did not.", ["Prices rose 3.2% last year.", "Wages did not."]),
    ("Use a tool, e.g. a hammer. Then stop.", ["Use a tool, e.g. a hammer.", "Then stop."]),
])
def test_abbreviations_and_numbers_do_not_split(text, expected):
    assert split_sentences(text) == expected


def test_blank_text_has_no_sentences():
    assert split_sentences("   \n\t ") == []


def test_short_sentences_are_untouched():
    assert cap_sentence("A short sentence.", 200) == ["A short sentence."]


def test_long_sentence_splits_at_the_last_clause_punctuation_below_the_cap():
    first = "word " * 30 + "clause ends here,"  # 167 characters, then a comma
    sentence = first + " and then " + "more " * 20 + "words."
    pieces = cap_sentence(sentence, 200)
    assert pieces[0] == first
    assert all(len(p) <= 200 for p in pieces)


def test_numbers_with_commas_and_colons_are_not_break_points():
    sentence = "x" * 150 + " 3,000 people at 10:30 " + "y" * 60
    pieces = cap_sentence(sentence, 200)
    assert "3,000 people at 10:30" in pieces[0]


def test_a_1000_character_sentence_keeps_every_word():
    words = [f"w{i}" + ("," if i % 17 == 0 else "") + (";" if i % 41 == 0 else "") for i in range(220)]
    sentence = " ".join(words)
    assert len(sentence) > 1000
    pieces = cap_sentence(sentence, 200)
    assert len(pieces) >= 5
    assert all(0 < len(p) <= 200 for p in pieces)
    assert " ".join(pieces).split() == sentence.split()


def test_a_token_longer_than_the_cap_is_cut_at_the_cap():
    pieces = cap_sentence("a" * 450, 200)
    assert [len(p) for p in pieces] == [200, 200, 50]
    assert "".join(pieces) == "a" * 450


def test_segment_document_caps_each_sentence():
    text = "Short one. " + "long " * 80 + "end. Last."
    sentences = segment_document(text, max_chars=100)
    assert sentences[0] == "Short one." and sentences[-1] == "Last."
    assert all(len(s) <= 100 for s in sentences)
    assert " ".join(sentences).split() == text.split()


def test_sentences_split_by_the_cap_are_counted():
    from lcm.data.segment import capped_sentences

    text = "Short one. " + "long " * 80 + "end. " + "word, " * 30 + "done. Last."
    pieces, split = capped_sentences(text, max_chars=100)
    assert split == 2 and len(pieces) > 4 and pieces == segment_document(text, max_chars=100)
    assert capped_sentences("Short one. Last.", max_chars=100) == (["Short one.", "Last."], 0)
