"""The ``quant_d`` head: Quant-LCM-d. Predicts the next concept's residual codes coarse to fine,
one softmax over the C units of each codebook, and decodes the chosen codes with the codebooks.

Level k's logits score each codeword e of codebook k by its distance to the level network's
output q_k (see ``quantized``): ``s_k * (2 q_k.e - |e|^2) + b_k[e]``, i.e. minus the squared
distance up to a term constant over the units, times a learned per-level sharpness s_k
(initialised to 1 / mean |e|^2 of the level, so the first logits are O(1)) plus a learned
bias per unit. Trained with cross-entropy of the true codes (teacher forcing over levels);
generation samples level by level with ``temperature`` and ``top_k`` (temperature 0: argmax).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcm.fields import bounded
from lcm.hookspecs import hookimpl
from lcm.model.randomness import RowGenerators
from lcm.plugins.heads.quantized import QuantHeadConfig, QuantizedHead


@dataclass
class QuantDConfig(QuantHeadConfig):
    temperature: float = bounded(1.0, ge=0)
    """Softmax temperature when sampling each level's code; 0 takes the most likely code."""
    top_k: int = bounded(0, ge=0)
    """Sample among the k most likely codes of each level only; 0: among all of them."""


class QuantDHead(QuantizedHead):
    name = "quant_d"
    description = "Quant-LCM-d: softmax over RVQ codebook units, coarse to fine, then decode"
    Config = QuantDConfig
    sampling_options = ("temperature", "top_k")

    def __init__(self, config, trunk, concept_dim):
        super().__init__(config, trunk, concept_dim)
        spread = self.codebooks.pow(2).sum(-1).mean(-1)  # (K,) mean |e|^2 per level (NaN: stored)
        log_scale = torch.where(torch.isfinite(spread), -spread.clamp_min(1e-6).log(),
                                torch.zeros_like(spread))
        self.log_scale = nn.Parameter(log_scale)
        self.unit_bias = nn.Parameter(torch.zeros(self.num_codebooks, self.codebook_size))

    def logits(self, queries: Tensor, level: int | None = None) -> Tensor:
        """Scores of the units: (N, K, D) -> (N, K, C) for all levels, or (B, D) -> (B, C) for
        one ``level``."""
        codebooks = self.codebooks.float()
        if level is None:
            dots = torch.einsum("nkd,kcd->nkc", queries, codebooks)
            return self.log_scale.exp()[:, None] * (2 * dots - codebooks.pow(2).sum(-1)) \
                + self.unit_bias
        codebook = codebooks[level]  # (C, D)
        return self.log_scale[level].exp() * (2 * queries @ codebook.T - codebook.pow(2).sum(-1)) \
            + self.unit_bias[level]

    def level_loss(self, queries, codes, partial, targets):
        logits = self.logits(queries)  # (N, K, C)
        loss = F.cross_entropy(logits.reshape(-1, self.codebook_size), codes.reshape(-1),
                               reduction="sum") / max(codes.numel(), 1)  # 0, not NaN, if empty
        with torch.no_grad():
            correct = (logits.argmax(-1) == codes).float()  # (N, K)
            rows = max(len(codes), 1)
        return loss, {"ce": float(loss.detach()),
                      "code_accuracy": float(correct.sum()) / (rows * self.num_codebooks),
                      "first_code_accuracy": float(correct[:, 0].sum()) / rows}

    def choose(self, level, query, generators):
        return sample_logits(self.logits(query, level), self.config.temperature,
                             self.config.top_k, generators)


def sample_logits(logits: Tensor, temperature: float, top_k: int,
                  generators: RowGenerators | None) -> Tensor:
    """One index per row of ``logits`` (B, C): argmax at temperature 0, else a softmax sample
    at ``temperature`` among the ``top_k`` best (0: all)."""
    if temperature == 0:
        return logits.argmax(-1)
    if 0 < top_k < logits.shape[-1]:
        threshold = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1) the k-th best score
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    probabilities = torch.softmax(logits.float() / temperature, dim=-1)
    if generators is None:
        return torch.multinomial(probabilities, 1)[:, 0]
    return generators.multinomial(probabilities)


@hookimpl
def register_heads(register) -> None:
    register(QuantDHead)
