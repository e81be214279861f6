"""The GPU check, ``python -m benchmarks --gpu``: what anyone with one CUDA GPU runs in a few
minutes to put GPU figures beside the CPU ones. On a machine without CUDA it prints one line
and does nothing. Each figure sits beside a baseline from the same run:

* trunk training step, d=2048 (16 heads, SwiGLU 5632, 8 layers), bf16 weights, 8 x 1024
  concepts: achieved FLOP/s (counted by ``lcm.plan.trace.counting_flops``, x3 for backward)
  against the GPU's own dense bf16 matmul (8192^2) FLOP/s — the MFU ``lcm plan`` assumes;
* SONAR text encoder at its real size (the ``basic`` architecture, random weights — no weights
  ship) through the ``sonar_text`` plugin, batches of 256 sentences: bf16 against fp32;
* generation after a 128-concept prompt, ``mse`` head on the d=2048 trunk: the KV cache against
  recomputing the prefix (``uncached``).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from benchmarks.bench_generation import generation_rate
from benchmarks.bench_sonar import build_tokenizer, real_size_encoder, wiki_sentences
from benchmarks.bench_train_step import trunk_step
from benchmarks.common import Result, registry
from lcm.interfaces import ConceptSpace
from lcm.model.lcm import build_model
from lcm.plan.trace import counting_flops
from lcm.tasks.train import resolve_head

SPACE = ConceptSpace("bench", 1024)
TRUNK = {"model_dim": 2048, "num_heads": 16, "ffn_inner_dim": 5632, "num_layers": 8,
         "max_seq_len": 4096}
SKIP_LINE = "GPU check skipped: no CUDA device here (torch.cuda.is_available() is False)"


def cuda_seconds(work: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``work`` with the GPU synchronised around it (after a warm-up)."""
    work()
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_flops(size: int = 8192, dtype: torch.dtype = torch.bfloat16) -> float:
    a = torch.randn(size, size, device="cuda", dtype=dtype)
    b = torch.randn(size, size, device="cuda", dtype=dtype)
    return 2 * size ** 3 / cuda_seconds(lambda: a @ b, 10)


def trunk_model(head: str = "mse"):
    torch.manual_seed(0)
    spec = resolve_head(registry(), "small", {"name": head})
    return build_model("small", TRUNK, spec, SPACE).to("cuda", torch.bfloat16)


def trunk_mfu(repeats: int) -> Result:
    model = trunk_model().train()
    concepts = torch.randn(8, 1024, SPACE.dim, device="cuda", dtype=torch.bfloat16)
    step = trunk_step(model, concepts)
    with counting_flops(model) as counted:
        step()
    achieved = 3 * counted[0] / cuda_seconds(step, repeats)
    return Result("gpu", "trunk d=2048 bf16 training step (fwd+bwd), achieved FLOP/s", "TFLOP/s",
                  achieved / 1e12, "dense bf16 matmul 8192², same GPU", matmul_flops() / 1e12)


def sonar_throughput(sentences: int) -> Result:
    from lcm.plugins.encoders.sonar_text import SonarTextEncoder

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp), wiki_sentences(5000))
    texts = wiki_sentences(sentences)
    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = real_size_encoder().to("cuda", dtype)
        encoder = SonarTextEncoder(SonarTextEncoder.Config(device="cuda", batch_size=256,
                                                           max_tokens=256 * 512))
        encoder.attach(model, tokenizer, torch.device("cuda"))
        rates[dtype] = len(texts) / cuda_seconds(lambda: encoder.encode(texts), 2)
        del model, encoder
    return Result("gpu", "sonar_text encoder, real size, random weights, bf16, batch 256",
                  "sentences/s", rates[torch.bfloat16], "the same in fp32", rates[torch.float32])


def generation(new: int) -> Result:
    model = trunk_model().eval()
    prompts = [torch.randn(128, SPACE.dim, device="cuda", dtype=torch.bfloat16) for _ in range(4)]
    generation_rate(model, prompts, 1, 1)  # warm-up
    cached = generation_rate(model, prompts, new, 2)
    recomputed = generation_rate(model, prompts, new, 1, recompute=True)
    return Result("gpu", "generation after 128 concepts, mse head, d=2048 trunk, KV cache",
                  "concepts/s", cached, "no cache (recompute the prefix)", recomputed)


def run(quick: bool = False) -> list[Result]:
    """The GPU rows, or none (after one line on stdout) without CUDA."""
    if not torch.cuda.is_available():
        print(SKIP_LINE)
        return []
    return [trunk_mfu(3 if quick else 10), sonar_throughput(512 if quick else 4096),
            generation(8 if quick else 32)]
