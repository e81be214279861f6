"""The token-level baseline of bench_lcm_vs_token: the project's own concept Transformer
(``lcm.model.transformer.ConceptTransformer``, same config, same KV cache) over WordPiece
token embeddings instead of concepts, with an LM head tied to the embeddings.

Only speed is measured with it, so it generates a fixed number of tokens greedily (an untrained
model never says when a sentence ends).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcm.model.config import TransformerConfig
from lcm.model.transformer import ConceptTransformer


class TokenLM(nn.Module):
    """Token embedding -> causal trunk -> tied LM head."""

    def __init__(self, config: TransformerConfig, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.model_dim)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.trunk = ConceptTransformer(config)

    def logits(self, states: Tensor) -> Tensor:
        return states @ self.embed.weight.T  # (B, T, d) -> (B, T, V)

    def loss(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Mean next-token cross-entropy of right-padded ``ids`` (B, T) where ``mask`` is True."""
        logits = self.logits(self.trunk(self.embed(ids), mask))[:, :-1]  # (B, T-1, V)
        targets = ids[:, 1:].masked_fill(~mask[:, 1:], -100)  # (B, T-1)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    @torch.no_grad()
    def generate(self, ids: Tensor, new_tokens: int) -> Tensor:
        """Greedy continuation of ``ids`` (B, T) by ``new_tokens`` tokens, one cached step each."""
        cache = self.trunk.new_cache(ids.shape[0], capacity=ids.shape[1] + new_tokens)
        states = self.trunk(self.embed(ids), None, cache)  # (B, T, d): the prompt, read once
        out = []
        for _ in range(new_tokens):
            token = self.logits(states[:, -1]).argmax(-1)  # (B,)
            out.append(token)
            states = self.trunk(self.embed(token[:, None]), None, cache)  # (B, 1, d)
        return torch.stack(out, 1)  # (B, new_tokens)

    def non_embedding_parameters(self) -> int:
        return sum(p.numel() for p in self.trunk.parameters())
