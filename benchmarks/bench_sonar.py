"""SONAR text-encoder throughput at the real architecture size: the ``sonar_text`` plugin
against sonar's ``TextToEmbeddingModelPipeline`` used the plain way, same model, same sentences.

The model is sonar's ``basic`` text encoder (24 layers, 1024-d, 256,206-token vocabulary; random
weights cost the same as trained ones), built by sonar's factory. The NLLB tokenizer cannot be
downloaded here, so a SentencePiece model of 8,000 pieces trained on the shipped Wikipedia
summaries stands in (token counts per sentence are close to the real one's).

    python -m benchmarks --only bench_sonar [--quick]
    python benchmarks/bench_sonar.py [--quick]

At this size a CPU encodes about one sentence per second, so the workload stays small:
64 sentences (16 with --quick).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "wiki_summaries.jsonl"


def wiki_sentences(limit: int) -> list[str]:
    from lcm.data.segment import segment_document

    sentences: list[str] = []
    with CORPUS.open(encoding="utf-8") as f:
        for line in f:
            sentences.extend(segment_document(json.loads(line)["text"]))
            if len(sentences) >= limit:
                break
    return sentences[:limit]


def build_tokenizer(directory: Path, sentences: list[str]) -> object:
    import sentencepiece as spm
    from fairseq2.models.nllb.tokenizer import NllbTokenizerConfig, load_nllb_tokenizer

    from lcm.plugins.sonar.languages import nllb_languages

    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(sentences), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(directory / "spm"),
                                   vocab_size=8000, hard_vocab_limit=False, pad_id=-1, unk_id=0,
                                   bos_id=1, eos_id=2, minloglevel=2)
    return load_nllb_tokenizer(directory / "spm.model", NllbTokenizerConfig(
        langs=list(nllb_languages()), default_lang="eng_Latn"))


def real_size_encoder() -> object:
    import torch
    from sonar.models.sonar_text import get_sonar_text_encoder_hub
    from sonar.models.sonar_text.factory import _create_sonar_text_encoder_model

    torch.manual_seed(0)
    config = get_sonar_text_encoder_hub().get_arch_config("basic")
    return _create_sonar_text_encoder_model(config).eval()


def timed(work) -> tuple[float, object]:
    start = time.perf_counter()
    out = work()
    return time.perf_counter() - start, out


def run(quick: bool = False) -> list[Result]:
    import torch
    from sonar.inference_pipelines.text import TextToEmbeddingModelPipeline

    from lcm.plugins.encoders.sonar_text import SonarTextEncoder

    n = 16 if quick else 64
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp), wiki_sentences(5000))
    sentences = wiki_sentences(n)
    model = real_size_encoder()
    device = torch.device("cpu")

    plain = TextToEmbeddingModelPipeline(encoder=model, tokenizer=tokenizer)
    plugin = SonarTextEncoder(SonarTextEncoder.Config(device="cpu")).attach(model, tokenizer, device)
    plugin.encode(sentences[:4])  # warm-up, both paths share the model
    base_s, expected = timed(lambda: plain.predict(sentences, source_lang="eng_Latn"))
    ours_s, vectors = timed(lambda: plugin.encode(sentences))
    torch.testing.assert_close(vectors, expected, atol=1e-4, rtol=1e-3)
    return [Result("sonar", f"sonar_text encode, real size, CPU ({n} sentences)", "sentences/s",
                   n / ours_s, "TextToEmbeddingModelPipeline defaults", n / base_s)]


if __name__ == "__main__":
    rows = [r.as_dict() for r in run(quick="--quick" in sys.argv)]
    print(json.dumps(rows, indent=2))
    for r in rows:
        print(f"{r['measure']}: {r['value']:.1f} {r['unit']} vs {r['baseline_name']} "
              f"{r['baseline']:.1f} -> {r['ratio']:.2f}x")
