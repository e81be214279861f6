"""The retrieval decoder: nearest sentence (cosine) in a bank of shards and/or observed input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lcm.components import component_options
from lcm.data.shards import iter_documents
from lcm.errors import ConceptSpaceMismatchError, UserError
from lcm.interfaces import ConceptSpace
from lcm.registry import get_registry


def make_decoder(**options):
    return get_registry().create("decoder", {"name": "retrieval", **options})


def bank_of(prepared) -> tuple[list[str], torch.Tensor]:
    documents = list(iter_documents(prepared.shards))
    sentences = [s for d in documents for s in d.sentences]
    return sentences, torch.from_numpy(np.concatenate([d.vectors for d in documents])).float()


def noisy(vectors: torch.Tensor, sigma: float = 0.01) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return vectors + sigma * torch.randn(vectors.shape, generator=generator)


def test_noisy_vectors_decode_to_their_sentences_from_a_shard_bank(prepared_sample):
    sentences, vectors = bank_of(prepared_sample)
    decoder = make_decoder(bank=str(prepared_sample.shards), observed="ignore", batch_size=7)
    # sigma 0.01 per dimension is noise of norm ~0.2 on unit vectors: cosine ~0.98 to the truth
    found = decoder.nearest(noisy(vectors))
    assert [text for text, _ in found] == sentences
    assert min(score for _, score in found) > 0.9
    assert decoder.decode(vectors[:2]) == sentences[:2]


def test_observed_sentences_are_the_bank_when_there_is_no_shard_bank(prepared_sample):
    sentences, vectors = bank_of(prepared_sample)
    decoder = make_decoder()
    decoder.observe(sentences[:5], vectors[:5])
    assert decoder.decode(noisy(vectors[:5])) == sentences[:5]
    decoder.observe(sentences[5:10], vectors[5:10])  # observations accumulate
    assert decoder.decode(noisy(vectors[:10])) == sentences[:10]


def test_exclude_never_echoes_an_observed_sentence(prepared_sample):
    sentences, vectors = bank_of(prepared_sample)
    decoder = make_decoder(bank=str(prepared_sample.shards), observed="exclude")
    decoder.observe(sentences[:3], vectors[:3])
    decoded = decoder.decode(vectors[:6])
    assert not set(decoded[:3]) & set(sentences[:3])
    assert decoded[3:] == sentences[3:6]


def test_an_empty_bank_is_a_clear_user_error():
    with pytest.raises(UserError, match="no candidate sentences"):
        make_decoder(observed="ignore").decode(torch.zeros(1, 4))


def test_concept_space_comes_from_the_bank_or_options_without_loading(prepared_sample):
    cls = get_registry().get("decoder", "retrieval").cls
    space = cls.concept_space(component_options(cls, {"bank": str(prepared_sample.shards)}))
    assert space == ConceptSpace("minilm", 384)
    assert cls.concept_space(component_options(cls, {"space": "x", "dim": 8})) == ConceptSpace("x", 8)
    assert cls.concept_space(cls.Config()) is None  # observed sentences only: any space
    with pytest.raises(ConceptSpaceMismatchError):
        cls.concept_space(component_options(cls, {"bank": str(prepared_sample.shards),
                                                  "space": "sonar", "dim": 1024}))


def test_vectors_of_another_dimension_are_refused(prepared_sample):
    decoder = make_decoder(bank=str(prepared_sample.shards))
    with pytest.raises(ConceptSpaceMismatchError, match="dim 1024"):
        decoder.decode(torch.zeros(2, 1024))


def test_forget_drops_the_observed_sentences_and_keeps_the_decoder():
    """The pipeline reuses one decoder for every source and makes it forget in between."""
    import torch

    from lcm.errors import UserError
    from lcm.plugins.decoders.retrieval import RetrievalConfig, RetrievalDecoder

    decoder = RetrievalDecoder(RetrievalConfig(space="toy", dim=2))
    decoder.observe(["first."], torch.tensor([[1.0, 0.0]]))
    assert decoder.decode(torch.tensor([[1.0, 0.1]])) == ["first."]
    assert decoder.forget()
    decoder.observe(["second."], torch.tensor([[0.0, 1.0]]))
    assert decoder.decode(torch.tensor([[1.0, 0.1]])) == ["second."]
    assert decoder.forget()
    with pytest.raises(UserError, match="no candidate sentences"):
        decoder.decode(torch.tensor([[1.0, 0.0]]))
