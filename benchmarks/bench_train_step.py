"""Training-step speed of each head: concepts per second and achieved FLOP/s, the latter set
against this machine's dense fp32 matmul FLOP/s, measured just before each head's steps.

FLOPs are counted, not estimated from a formula, in one extra (untimed) step, by
``lcm.plan.trace.counting_flops`` (what ``lcm plan`` counts too):

* dense: every ``nn.Linear`` call adds 2 x in x out x rows (forward); a training step is 3x
  forward (backward computes gradients of inputs and weights) — the usual 6 x params x tokens,
  applied to the tokens each matrix actually sees (the One-Tower's trunk sees 2T slots, the
  Two-Tower's denoiser T positions);
* attention: 4 x head_dim FLOPs per head per *visible* (query, key) pair (QK^T and AV),
  again x3 — masked-out pairs (causal upper triangle, the Two-Tower's diagonal
  self-attention, the One-Tower's hidden noisy slots) are not counted though kernels may
  compute them. Norms, activations and the optimiser are not counted (but are timed).

The trunk row times forward + backward of PreNet + trunk alone (what the issue's ">50% at
d >= 512" target is about); head rows time a whole step (forward, backward, AdamW).
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from benchmarks.common import Result, adamw_step, best_seconds, registry
from lcm.interfaces import ConceptSpace
from lcm.model.heads import context_states
from lcm.model.lcm import build_model
from lcm.plan.trace import counting_flops
from lcm.tasks.train import resolve_head

SPACE = ConceptSpace("bench", 384)
TRUNK = {"model_dim": 512, "num_heads": 8, "ffn_inner_dim": 1408, "num_layers": 4}
HEADS = ("mse", "two_tower", "one_tower")
MATMUL_SIZE = 1024


def matmul_flops_per_second(size: int, repeats: int) -> float:
    """Best dense fp32 (size x size) @ (size x size) rate of this machine, now."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size ** 3 / (time.perf_counter() - start))
    return best


def head_step(model, concepts: torch.Tensor) -> Callable[[], None]:
    return adamw_step(model, lambda: model(concepts).loss)


def trunk_step(model, concepts: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        context_states(model.backbone, concepts).square().mean().backward()
    return step


def measure(name: str, model, step: Callable[[], None], concepts: int, repeats: int,
            baseline_rate: float | None) -> tuple[list[Result], float]:
    with counting_flops(model) as counted:
        step()  # also the warm-up (allocations, optimiser state), untimed
    # the machine's rate right before this head's steps: a busy machine's speed drifts
    peak = matmul_flops_per_second(MATMUL_SIZE, 20)
    seconds = best_seconds(step, repeats)
    flops_per_second = 3 * counted[0] / seconds
    rate = concepts / seconds
    rows = [Result("train_step", f"{name}: achieved FLOP/s", "GFLOP/s", flops_per_second / 1e9,
                   f"dense fp32 matmul {MATMUL_SIZE}², just before", peak / 1e9)]
    if baseline_rate is not None:
        rows.append(Result("train_step", f"{name}: training step", "concepts/s", rate,
                           "mse head (Base-LCM)", baseline_rate))
    return rows, rate


def small_model(head: str):
    """The ``small`` trunk (with TRUNK's changes) and the named head, in training mode."""
    head_spec = resolve_head(registry(), "small", {"name": head})
    return build_model("small", TRUNK, head_spec, SPACE).train()


def run(quick: bool = False) -> list[Result]:
    batch, length, repeats = (2, 32, 1) if quick else (4, 64, 3)
    concepts = torch.randn(batch, length, SPACE.dim, generator=torch.Generator().manual_seed(0))
    results: list[Result] = []
    torch.manual_seed(0)
    mse = small_model("mse")
    rows, _ = measure(f"trunk d={TRUNK['model_dim']} (fwd+bwd)", mse, trunk_step(mse, concepts),
                      batch * length, repeats, None)
    results += rows
    mse_rate = None
    for head in HEADS:
        torch.manual_seed(0)
        model = mse if head == "mse" else small_model(head)
        rows, rate = measure(f"{head} head", model, head_step(model, concepts), batch * length,
                             repeats, mse_rate)
        mse_rate = mse_rate or rate
        results += rows
    return results
