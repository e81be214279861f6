"""lcm's batched decoding loop (``lcm.plugins.learned.generation``) against transformers' own
``generate`` on a tiny random causal BERT built by transformers' factory: greedy decoding writes
the very same tokens, the n-gram block bans what transformers' processor bans, candidates that
end early leave the batch without changing the others, and sampling is reproducible by seed."""
from __future__ import annotations

import pytest
import torch

from lcm.interfaces import ConceptSpace
from lcm.plugins.learned.generation import Sampling, banned_by_ngrams, nucleus, write_sentences
from lcm.plugins.learned.model import ConceptDecoderModel
from lcm.plugins.learned.options import DecoderArch

MAX_TOKENS = 12
HIDDEN = 32


@pytest.fixture(scope="module")
def model() -> ConceptDecoderModel:
    torch.manual_seed(0)
    arch = DecoderArch(base="random", hidden_size=HIDDEN, num_layers=2, num_heads=2,
                       intermediate_size=64, prefix_hidden=64, max_tokens=MAX_TOKENS)
    built = ConceptDecoderModel.build(arch, ConceptSpace("toy", 16)).eval()
    # a dozen words and [SEP] at a level that ends some sentences at once, some late, some never
    with torch.no_grad():
        bias = built.lm.cls.predictions.bias
        bias[:] = -1e4
        bias[1000:1012] = 0.0
        bias[built.tokenizer.sep_token_id] = 0.1
    return built


def prefixes(rows: int, seed: int) -> torch.Tensor:
    """Random prefix embeddings (B, 3, H): they sway a random model more than its concept MLP."""
    return torch.randn(rows, 3, HIDDEN, generator=torch.Generator().manual_seed(seed))


def transformers_greedy(model: ConceptDecoderModel, embeds: torch.Tensor, ngram: int) -> list[list[int]]:
    sep, pad = model.tokenizer.sep_token_id, model.tokenizer.pad_token_id
    ids = model.lm.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2]),
                            max_new_tokens=MAX_TOKENS + 1, eos_token_id=sep, pad_token_id=pad,
                            no_repeat_ngram_size=ngram, do_sample=False, num_beams=1)
    return [[t for t in row if t not in (sep, pad)] for row in ids.tolist()]


@pytest.mark.parametrize("ngram", [0, 2, 3])
def test_greedy_writes_the_tokens_transformers_generate_writes(model, ngram):
    embeds = prefixes(12, ngram)
    ours = write_sentences(model.lm, embeds, 1, MAX_TOKENS + 1, model.tokenizer.sep_token_id, ngram)
    theirs = transformers_greedy(model, embeds, ngram)
    assert ours == theirs
    lengths = {len(s) for s in ours}
    assert len(lengths) > 1  # some ended early and left the batch while others went on


def test_the_ngram_block_bans_what_transformers_processor_bans():
    from transformers import NoRepeatNGramLogitsProcessor

    tokens = torch.randint(0, 5, (16, 14), generator=torch.Generator().manual_seed(3))
    for size in (1, 2, 3, 4):
        scores = torch.zeros(16, 5)
        expected = NoRepeatNGramLogitsProcessor(size)(tokens, scores.clone())
        row, token = banned_by_ngrams(tokens, size)
        scores[row, token] = -float("inf")
        assert torch.equal(scores, expected), size


@pytest.mark.parametrize("top_p, temperature", [(0.9, 0.7), (0.5, 1.0), (1.0, 1.3)])
def test_the_nucleus_is_what_transformers_warpers_leave(top_p, temperature):
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    scores = 3 * torch.randn(6, 400, generator=torch.Generator().manual_seed(1))
    scores[0, :390] = -float("inf")  # fewer candidates than top-k's 50 (the n-gram block)
    warped = scores.clone()
    for warp in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(50), TopPLogitsWarper(top_p)):
        warped = warp(None, warped)
    probs, ids = nucleus(scores, Sampling(top_p, temperature))
    ours = torch.zeros_like(scores).scatter_add_(1, ids, probs)
    torch.testing.assert_close(ours, warped.softmax(-1), atol=1e-6, rtol=0)


def test_candidates_are_independent_of_the_batch_they_share(model):
    """A concept's greedy copies are all its own sentence, alone or in a batch of others."""
    embeds = prefixes(5, 11)
    sep = model.tokenizer.sep_token_id
    together = write_sentences(model.lm, embeds, 3, MAX_TOKENS + 1, sep, 3)
    for row in range(5):
        alone = write_sentences(model.lm, embeds[row:row + 1], 1, MAX_TOKENS + 1, sep, 3)
        assert together[3 * row:3 * row + 3] == alone * 3


def test_sampling_is_reproducible_by_seed_and_varies_with_it(model):
    embeds = prefixes(4, 5)
    sep = model.tokenizer.sep_token_id

    def draw(seed: int) -> list[list[int]]:
        return write_sentences(model.lm, embeds, 8, MAX_TOKENS + 1, sep, 3,
                               Sampling(top_p=0.9, temperature=1.5, seed=seed))

    first = draw(0)
    torch.manual_seed(123)  # the process's generator does not matter
    assert draw(0) == first
    assert draw(1) != first
    assert len({tuple(s) for s in first}) > 1  # candidates of one concept differ


def test_a_vanishing_nucleus_samples_the_greedy_sentence(model):
    embeds = prefixes(6, 9)
    sep = model.tokenizer.sep_token_id
    greedy = write_sentences(model.lm, embeds, 1, MAX_TOKENS + 1, sep, 3)
    sampled = write_sentences(model.lm, embeds, 1, MAX_TOKENS + 1, sep, 3,
                              Sampling(top_p=1e-6, temperature=1.0, seed=0))
    assert sampled == greedy
