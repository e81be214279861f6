"""A summary's rules (``lcm.pipeline.support`` and ``selector.choose``): nothing the source does
not say, no two sentences covering one segment, no word repeated within three."""
from __future__ import annotations

import torch

from lcm.pipeline.selector import GENERATED, RETRIEVED, choose
from lcm.pipeline.support import SourceSupport, names, numbers, repeats_word

SOURCE = ["Wells supply water to 40 villages in Kenya.",
          "The ministry drilled them in 2019.",
          "Each well serves about 300 people."]


def _support(min_cosine: float = 0.5) -> SourceSupport:
    return SourceSupport(SOURCE, torch.eye(3, 4), min_cosine)


def test_numbers_and_names_are_read_as_a_reader_would():
    assert numbers("It rose 3.2% in 2019, to 1,200.") == {"3.2", "2019", "1,200"}
    # the sentence's first word is no name; "I" is no name; acronyms are
    assert names("The rain in Kenya. Then I saw NER systems and Nairobi.") == {"Kenya", "NER", "Nairobi"}


def test_the_support_check_refuses_an_invented_number_and_an_invented_name():
    support = _support()
    near_first = torch.tensor([1.0, 0.1, 0.0, 0.0])
    assert support.check("Wells supply water to 40 villages in Kenya.", near_first).supported
    assert support.check("Wells bring water to villages in Kenya.", near_first).supported
    invented_number = support.check("Wells supply water to 45 villages in Kenya.", near_first)
    assert not invented_number.supported and invented_number.missing == ("45",)
    invented_name = support.check("Wells supply water to villages in Uganda.", near_first)
    assert not invented_name.supported and invented_name.missing == ("Uganda",)
    far = support.check("Wells supply water.", torch.tensor([0.3, 0.3, 0.3, 1.0]))
    assert not far.supported and far.missing == () and far.cosine < 0.5


def test_a_source_segment_is_supported_whatever_its_vector():
    verdict = _support().check(SOURCE[1], torch.tensor([0.0, 0.0, 0.0, 1.0]))
    assert verdict.supported and verdict.segment == 1


def test_the_fallback_picks_a_supported_candidate():
    concept = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    pool = [("Wells supply water to 45 villages in Uganda.", GENERATED)]  # closest, invented
    chosen, = choose(concept, [pool], torch.tensor([[1.0, 0.0, 0.0, 0.0]]), _support())
    assert chosen.fallback and chosen.support.supported
    assert chosen.decoded.text == SOURCE[0] and chosen.decoded.origin == RETRIEVED
    assert chosen.decoded.generated_cosine == 1.0  # why the generated one lost: it was closer
    # a supported generated candidate closer to the concept than any source sentence is kept,
    # even when the closest candidate is not supported
    concept = torch.tensor([[0.8, 0.0, 0.0, 0.6]])
    pool = [("Wells supply water to 45 villages.", GENERATED), ("Wells bring water.", GENERATED)]
    vectors = torch.tensor([[0.8, 0.0, 0.0, 0.6], [0.75, 0.05, 0.0, 0.6]])
    chosen, = choose(concept, [pool], vectors, _support())
    assert not chosen.fallback and chosen.decoded.text == "Wells bring water."
    # and one no closer to the concept than the nearest source sentence is not
    pool = [("Wells bring water.", GENERATED)]
    chosen, = choose(concept, [pool], torch.tensor([[0.6, 0.8, 0.0, 0.0]]), _support())
    assert chosen.decoded.text == SOURCE[0] and not chosen.fallback


def test_two_concepts_nearest_one_segment_give_two_different_sentences():
    concepts = torch.tensor([[0.8, 0.0, 0.0, 0.6], [0.8, 0.0, 0.1, 0.6]])  # both nearest segment 0
    pools = [[("Wells bring water to villages.", GENERATED)],
             [("Wells give water to villages.", GENERATED)]]
    vectors = torch.tensor([[0.8, 0.0, 0.0, 0.6], [0.8, 0.05, 0.0, 0.6]])
    first, second = choose(concepts, pools, vectors, _support())
    assert first.segment == 0 and first.decoded.text == "Wells bring water to villages."
    assert second.segment != 0 and second.decoded.text != first.decoded.text
    assert second.decoded.text == SOURCE[2] and second.fallback  # the next nearest segment
    # once every segment is taken, sentences may share one (a source shorter than the summary)
    many = choose(torch.eye(4)[[0, 0, 0, 0]], [[(SOURCE[0], RETRIEVED)]] * 4,
                  torch.eye(4)[[0, 0, 0, 0]], _support())
    assert sorted(c.segment for c in many[:3]) == [0, 1, 2] and many[3].segment == 0


def test_the_repetition_rule():
    assert repeats_word("The wells are built from the wells, such as wells, wells, and wells.")
    assert repeats_word("water water everywhere")
    assert repeats_word("wells and wells")
    assert not repeats_word("the cat and the dog")  # three words apart
    assert not repeats_word("agencies such as Symantec and Cylance and others")  # function words
    concept = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    pool = [("Wells, wells, and wells supply water in Kenya.", GENERATED)]
    chosen, = choose(concept, [pool], torch.tensor([[1.0, 0.0, 0.0, 0.0]]), _support())
    assert chosen.fallback and chosen.decoded.text == SOURCE[0]
    # a source sentence says what it says: the rule is for sentences a decoder writes
    repeating = SourceSupport(["Water, water, water everywhere."], torch.eye(1, 4))
    chosen, = choose(concept, [[("Water, water, water everywhere.", RETRIEVED)]],
                     torch.eye(1, 4), repeating)
    assert not chosen.fallback


def test_each_sentence_s_support_is_marked_in_the_terminal_line_and_the_page():
    from lcm.pipeline.selector import describe_decoding
    from lcm.serve.render import result_html

    supported = {"text": SOURCE[0], "source_index": 0, "similarity": 0.9, "decoded": RETRIEVED,
                 "round_trip": 0.9, "fallback": True,
                 "support": {"supported": True, "cosine": 1.0}}
    unsupported = {"text": "Wells in Uganda.", "source_index": 0, "similarity": 0.6,
                   "decoded": GENERATED, "round_trip": 0.6,
                   "support": {"supported": False, "cosine": 0.6, "missing": ["Uganda"]}}
    assert describe_decoding(supported).endswith("no candidate passed the rules, supported")
    assert describe_decoding(unsupported).endswith("UNSUPPORTED")
    record = {"segments": [{"index": i, "text": t} for i, t in enumerate(SOURCE)],
              "summary": [supported, unsupported], "modality": "text",
              "parts": [{"start": 0, "stop": 3, "stop_reason": "max_length"}], "left_out": 0}
    page = result_html(record, None, "", 1.0)
    assert page.count('class="lcm-badge lcm-supported"') == 1
    assert 'class="lcm-badge lcm-unsupported" title="cosine 0.60 to the nearest source segment; ' \
           'not in the source: Uganda"' in page
