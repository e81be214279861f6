"""Shared helpers of the benchmarks: timing and result rows."""
from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable


@dataclass
class Result:
    """One measurement and the baseline it is compared with, in the same unit."""

    benchmark: str
    measure: str
    unit: str
    value: float
    baseline_name: str
    baseline: float
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        if not self.baseline:
            return float("nan")
        return self.value / self.baseline

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": round(self.ratio, 3)}


def best_rate(work: Callable[[], int], repeats: int = 3) -> float:
    """Items per second of ``work`` (which returns how many items it processed), best of N."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        items = work()
        elapsed = time.perf_counter() - start
        best = max(best, items / elapsed)
    return best


def best_seconds(work: Callable[[], Any], repeats: int) -> float:
    """Shortest wall time of ``work`` over ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def interleaved_best(works: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Shortest wall time of each of ``works``, timed in turns for ``repeats`` rounds: on a
    shared machine a change of load then hits every contender alike, not whichever ran last."""
    best = {name: float("inf") for name in works}
    for _ in range(repeats):
        for name, work in works.items():
            start = time.perf_counter()
            work()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def adamw_step(model: Any, loss: Callable[[], Any]) -> Callable[[], None]:
    """One training step (zero grads, ``loss()`` backward, AdamW) of ``model``, as a callable."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()
    return step


@functools.lru_cache(maxsize=1)
def registry() -> Any:
    """The installed plugins, loaded once for the benchmarks (as ``lcm`` loads them)."""
    from lcm.registry import build_registry

    return build_registry()
