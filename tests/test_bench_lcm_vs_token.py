"""The token-level baseline of benchmarks/bench_lcm_vs_token.py and its crossover arithmetic:
a benchmark is only as honest as its baseline."""
from __future__ import annotations

import torch

from benchmarks.bench_lcm_vs_token import crossover
from benchmarks.token_lm import TokenLM
from lcm.model.config import get_arch

VOCAB = 50


def token_lm() -> TokenLM:
    torch.manual_seed(0)
    return TokenLM(get_arch("toy"), VOCAB).eval()


def test_cached_greedy_generation_equals_recomputing_every_prefix():
    model = token_lm()
    ids = torch.randint(0, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    generated = model.generate(ids, 5)
    sequence = ids
    with torch.no_grad():
        for _ in range(5):
            logits = model.logits(model.trunk(model.embed(sequence)))[:, -1]
            sequence = torch.cat([sequence, logits.argmax(-1, keepdim=True)], 1)
    assert torch.equal(generated, sequence[:, 7:])


def test_the_loss_ignores_what_lies_under_the_padding():
    model = token_lm()
    ids = torch.randint(0, VOCAB, (2, 6), generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    other = ids.clone()
    other[1, 3:] = (ids[1, 3:] + 1) % VOCAB
    assert torch.allclose(model.loss(ids, mask), model.loss(other, mask))
    assert not torch.allclose(model.loss(ids, mask), model.loss(other, torch.ones_like(mask)))


def test_crossover_is_interpolated_or_extrapolated():
    contexts = (8, 32, 128)
    assert crossover(contexts, [0.5, 1.0, 4.0], [1.0, 2.0, 3.0]) == "about 74 sentences"
    assert crossover(contexts, [0.1, 0.4, 1.6], [1.8, 2.0, 3.0]) == \
        "none measured; extrapolated to about 800 sentences"
    assert crossover(contexts, [0.1, 0.1, 0.1], [1.8, 2.0, 3.0]) == \
        "none: the LCM is faster at every context and the gap does not close"
