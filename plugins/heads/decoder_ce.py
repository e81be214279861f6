"""The ``decoder_ce`` head: learns the next concept through a frozen decoder, by the token
likelihood of the next sentence (after SONAR-LLM, arXiv 2508.05305).

Its PostNet predicts the next concept as Base-LCM's does, but the loss is not the distance to
the true next concept: it is the teacher-forced negative log-likelihood of the true next
sentence's tokens under the decoder, given the predicted (de-normalised) concept. Gradients
flow through the decoder into the trunk; the decoder's own weights stay frozen and outside this
module, so they are neither optimised nor stored in checkpoints. The checkpoint records which
decoder it was (by plugin and model), and generation refuses another. Generating is one PostNet
pass per concept, like ``mse``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from lcm.fields import ComponentSection, bounded, component
from lcm.hookspecs import hookimpl
from lcm.interfaces import TokenLikelihood
from lcm.model.heads import (GenerationState, HeadModule, LossOutput, context_states,
                             next_concept_pairs)


@dataclass
class DecoderCeConfig:
    decoder: Optional[ComponentSection] = component("decoder", requires=TokenLikelihood, help=(
        "the decoder to learn through, one that scores sentences (learned, sonar_text); the "
        "model's concepts are decoded with it"))
    mse_weight: float = bounded(0.0, ge=0, help=(
        "weight of the MSE loss to the true next concept added to the token loss (SONAR-LLM "
        "mixes it in to stabilise early training); 0: the token loss alone"))
    max_sentences: int = bounded(0, ge=0, help=(
        "most next sentences scored through the decoder per micro-batch, drawn at random "
        "(0: all of them); the decoder's pass dominates a step's cost"))
    postnet_bias: bool = True

    def problems(self) -> list[str]:
        if self.decoder is None:
            return ["decoder_ce needs `decoder`: the decoder to learn through (e.g. "
                    "{name: learned, model: models/decoder_minilm})"]
        return []


class DecoderCeHead(HeadModule):
    name = "decoder_ce"
    description = "next concept learned by the next sentence's token likelihood through a frozen decoder"
    Config = DecoderCeConfig
    reads_sentences = True

    def __init__(self, config, trunk, concept_dim):
        super().__init__(config, trunk, concept_dim)
        self.postnet = nn.Linear(trunk.model_dim, concept_dim, bias=self.config.postnet_bias)
        self._decoder: Any = None  # a plain attribute: not a submodule, so never optimised or saved
        self._normalizer: Any = None

    def bind_normalizer(self, normalizer: Any) -> None:
        self._normalizer = normalizer

    @property
    def decoder(self) -> Any:
        """The frozen decoder (created on first use; its weights load on its first pass)."""
        if self._decoder is None:
            self._decoder = self.config.decoder.create()
        return self._decoder

    def trained_through(self) -> dict[str, str]:
        return self.decoder.weights_identity()

    def loss(self, backbone, concepts, mask, target_mask=None, sentences=None):
        if self._normalizer is None:
            raise RuntimeError("decoder_ce: no normaliser bound (bind_normalizer) to de-normalise "
                               "predicted concepts for the decoder")
        hidden = context_states(backbone, concepts, mask)  # (B, T, d)
        predicted = self.postnet(hidden[:, :-1]).float()  # (B, T-1, D)
        targets, valid = next_concept_pairs(concepts, mask, target_mask)
        count = valid.sum().clamp(min=1)
        per_concept = (predicted - targets.float()).pow(2).sum(-1)  # (B, T-1)
        mse = (per_concept * valid).sum() / (count * concepts.shape[-1])

        rows, columns = self._scored(valid)
        texts = [sentences[r][c + 1] for r, c in zip(rows.tolist(), columns.tolist())]
        if texts:
            vectors = self._normalizer.denormalize(predicted[rows, columns])
            nll, tokens = self.decoder.token_nll(vectors, texts)
            token_loss = nll.sum() / tokens.sum().clamp(min=1)
        else:  # nothing to predict in this batch: a zero that keeps the graph
            token_loss = predicted.sum() * 0.0
        loss = token_loss + self.config.mse_weight * mse if self.config.mse_weight else token_loss
        with torch.no_grad():
            l2 = (per_concept.sqrt() * valid).sum() / count
        return LossOutput(loss, {"token_nll": float(token_loss.detach()), "mse": float(mse.detach()),
                                 "l2": float(l2), "concepts": float(valid.sum()),
                                 "sentences_scored": float(len(texts))})

    def _scored(self, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, position) of the predictions scored through the decoder: every valid one, or
        ``max_sentences`` of them drawn with the global RNG (checkpoints keep its state, so a
        resumed run draws the same)."""
        rows, columns = valid.nonzero(as_tuple=True)
        limit = self.config.max_sentences
        if limit and len(rows) > limit:
            pick = torch.randperm(len(rows))[:limit].sort().values.to(rows.device)
            rows, columns = rows[pick], columns[pick]
        return rows, columns

    def next_concept(self, backbone, state: GenerationState):
        return self.postnet(state.hidden)  # (B, d) -> (B, D)


@hookimpl
def register_heads(register) -> None:
    register(DecoderCeHead)
