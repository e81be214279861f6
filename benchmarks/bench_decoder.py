"""The shipped generative decoder (models/decoder_minilm) against retrieval, in the same run.

On sentences it never trained on: Wikipedia sentences of the held-out documents
(data/wiki_heldout.jsonl) and an out-of-domain set (aclsum test papers, data/aclsum_test.jsonl),
encoded with MiniLM, at noise 0 and at noise 1.0 (Gaussian noise of the vector's norm: cosine
~0.71 to the clean vector, off the manifold of real sentences as an LCM's predictions are).
Systems: ``retrieval`` over the decoder's training bank (the baseline), the ``learned`` decoder
greedy, with round-trip reranking of 8 sampled candidates (the decoder's default), and the
hybrid (the retrieval sentence joins the 8 candidates). Scores: round-trip cosine (MiniLM of the decoded text vs the
clean vector), BLEU (sacrebleu), exact match, and sentences/s.

A concept space trained by ``train_space`` joins the same run where its folder exists
(``runs/space_minilm/model``, what recipes/train_space_minilm.yaml writes, or the folder named by
``LCM_BENCH_SPACE``): its own encoder encodes the sentences, noise is added to its vectors, its
decoder writes them back greedily, and MiniLM scores the round trip as for every other row.

    python -m benchmarks --only bench_decoder [--quick]
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Result, registry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "decoder_minilm"
NOISE_LEVELS = (0.0, 1.0)
TRAINED_SPACE = REPO / "runs" / "space_minilm" / "model"


def document_sentences(path: Path, field: str, per_document: int, limit: int) -> list[str]:
    """The first ``per_document`` sentences of each document, up to ``limit`` in all."""
    from lcm.data.segment import segment_document

    sentences: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        sentences += segment_document(json.loads(line)[field])[:per_document]
        if len(sentences) >= limit:
            break
    return sentences[:limit]


def bank_decoder(encoder: Any, quick: bool) -> tuple[Any, str]:
    """Retrieval over the decoder's training shards where they are on disk, else over the
    shipped corpus encoded now (a smaller bank, said in the row names)."""
    from lcm.components import component_options
    from lcm.plugins.decoders.retrieval import RetrievalDecoder
    from lcm.plugins.learned.model import read_record

    shards = read_record(MODEL).training.get("shards")
    if shards and (REPO / shards).is_dir():
        options = {"bank": str(REPO / shards), "observed": "ignore"}
        return RetrievalDecoder(component_options(RetrievalDecoder, options)), "training bank"
    corpus = document_sentences(REPO / "data" / "wiki_summaries.jsonl", "text", 99,
                                500 if quick else 100_000)
    decoder = RetrievalDecoder(component_options(RetrievalDecoder, {"space": "minilm", "dim": 384}))
    decoder.observe(corpus, encoder.encode(corpus))
    return decoder, "shipped corpus bank"


def trained_space() -> tuple[Any, Any] | None:
    """The encoder and greedy decoder of a trained space, where its folder exists."""
    from lcm.components import component_options
    from lcm.plugins.learned.decoder import LearnedDecoder
    from lcm.plugins.learned.space.encoder import LearnedEncoder

    folder = Path(os.environ.get("LCM_BENCH_SPACE", TRAINED_SPACE))
    if not (folder / "encoder").is_dir():
        return None
    encoder = LearnedEncoder(component_options(LearnedEncoder, {"model": str(folder),
                                                                "device": "cpu"}))
    decoder = LearnedDecoder(component_options(LearnedDecoder, {
        "model": str(folder), "candidates": 1, "beam_size": 1}))
    return encoder, decoder


def timed(decode: Callable[[Any], list[str]], vectors: Any) -> tuple[list[str], float]:
    started = time.perf_counter()
    texts = decode(vectors)
    return texts, len(texts) / (time.perf_counter() - started)


def run(quick: bool = False) -> list[Result]:
    import torch

    from lcm.components import component_options
    from lcm.plugins.encoders.minilm import MiniLMEncoder
    from lcm.plugins.learned.decoder import LearnedDecoder
    from lcm.plugins.learned.evaluation import noised, round_trip_cosines, text_scores

    limit = 24 if quick else 200
    sets = {
        "wiki held-out": document_sentences(REPO / "data" / "wiki_heldout.jsonl", "text", 99, limit),
        "aclsum test (out of domain)": document_sentences(REPO / "data" / "aclsum_test.jsonl",
                                                          "text", 2, limit),
    }
    encoder = MiniLMEncoder(component_options(MiniLMEncoder, {"device": "cpu"}))
    retrieval, bank_name = bank_decoder(encoder, quick)
    plugins = registry()

    def learned(**options: Any) -> LearnedDecoder:
        """Reranking by the benchmark's encoder (what an ``encoder: {name: minilm}`` builds)."""
        options = {"model": str(MODEL), "encoder": {"name": "minilm"}, **options}
        return LearnedDecoder(component_options(LearnedDecoder, options, plugins), encoder=encoder,
                              retrieval=retrieval if options.get("hybrid") else None)

    systems = {
        "greedy": LearnedDecoder(component_options(LearnedDecoder, {  # one candidate, no rerank
            "model": str(MODEL), "candidates": 1, "beam_size": 1})),
        "sample 8 + rerank": learned(),
        "hybrid": learned(hybrid=True),
    }
    warm_up = torch.zeros(2, 384)
    for decoder in (retrieval, *systems.values()):  # load weights and banks before timing
        decoder.decode(warm_up)
    space = trained_space()
    if space is not None:
        space[1].decode(space[0].encode(["A sentence to load the weights."]))
    results: list[Result] = []
    for set_name, sentences in sets.items():
        clean = encoder.encode(sentences).float()
        own = space[0].encode(sentences).float() if space is not None else None
        for level in NOISE_LEVELS:
            vectors = noised(clean, level)
            where = f"{set_name}, noise {level:g}"
            base_texts, base_rate = timed(retrieval.decode, vectors)
            base_cos = float(round_trip_cosines(encoder, base_texts, clean).mean())
            base_text = text_scores(base_texts, sentences)
            runs = {name: (decoder, vectors) for name, decoder in systems.items()}
            if space is not None:  # the space's own vectors, noised alike
                runs["trained space, greedy"] = (space[1], noised(own, level))
            for name, (decoder, inputs) in runs.items():
                texts, rate = timed(decoder.decode, inputs)
                cosine = float(round_trip_cosines(encoder, texts, clean).mean())
                scores = text_scores(texts, sentences)
                baseline = f"retrieval ({bank_name})"
                results += [
                    Result("decoder", f"{where}: {name} round-trip cosine", "cos", cosine,
                           baseline, base_cos),
                    Result("decoder", f"{where}: {name} BLEU", "BLEU", scores["bleu"], baseline,
                           base_text["bleu"]),
                    Result("decoder", f"{where}: {name} exact match", "share",
                           scores["exact_match"], baseline, base_text["exact_match"]),
                ]
                if level == 0.0:
                    results.append(Result("decoder", f"{set_name}: {name} speed", "sentences/s",
                                          rate, baseline, base_rate))
    return results


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for row in run(quick=quick):
        print(json.dumps(row.as_dict()))
