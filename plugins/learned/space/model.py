"""A concept space learned with its decoder: a sentence encoder and a concept decoder trained
as one bottleneck autoencoder, the encoder held near its pretrained self by an anchor term.

The encoder is a sentence-transformers model (a BERT-like transformer, mean pooling, unit
length); the decoder is the ``learned`` decoder's ``ConceptDecoderModel``. The loss of a batch
is the decoder's token NLL of each sentence from its (noised, dropped-out) new vector, plus
``anchor_weight * (1 - cosine(new vector, base vector))``.

On disk the space is one folder: the decoder's files at the top (what the ``learned`` decoder
loads) and ``encoder/``, a sentence-transformers folder (what the ``learned`` encoder loads),
both recording the same concept space.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lcm.errors import InputFileError
from lcm.plugins.learned.model import ConceptDecoderModel, load_model, resolve_folder

ENCODER_DIR = "encoder"


def load_sentence_encoder(folder: str | Path, device: str = "cpu") -> Any:
    """A sentence-transformers model from a local folder, never from the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    # after HF_HUB_OFFLINE is set: the hub reads it when it loads
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device=device)


class ConceptSpaceModel(nn.Module):
    """Encoder (transformer + mean pooling + unit length) and decoder, trained together."""

    def __init__(self, sentence_encoder: Any, decoder: ConceptDecoderModel, trainable_layers: int,
                 latent_dropout: float, anchor_weight: float):
        super().__init__()
        self.transformer = sentence_encoder[0].auto_model  # the BERT inside the ST pipeline
        self.decoder = decoder
        self.latent_dropout = nn.Dropout(latent_dropout)
        self.anchor_weight = anchor_weight
        self._freeze_below(trainable_layers)

    def _freeze_below(self, trainable_layers: int) -> None:
        """Train only the top ``trainable_layers`` encoder layers (embeddings stay frozen)."""
        layers = self.transformer.encoder.layer
        for parameter in self.transformer.parameters():
            parameter.requires_grad_(False)
        for layer in list(layers)[len(layers) - trainable_layers:] if trainable_layers else []:
            for parameter in layer.parameters():
                parameter.requires_grad_(True)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-length mean-pooled vectors (B, dim), as the sentence-transformers pipeline."""
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled.float(), dim=-1)

    def forward(self, encoder_ids: torch.Tensor, encoder_mask: torch.Tensor,
                input_ids: torch.Tensor, attention_mask: torch.Tensor, anchors: torch.Tensor,
                noise: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of a batch, and its parts (token NLL, anchor cosine)."""
        vectors = self.encode(encoder_ids, encoder_mask)
        noisy = vectors + noise * vectors.norm(dim=-1, keepdim=True)
        nll, counts = self.decoder.token_nll(self.latent_dropout(noisy), input_ids, attention_mask)
        reconstruction = nll.sum() / counts.sum().clamp(min=1)
        anchor = nn.functional.cosine_similarity(vectors, anchors.float(), dim=-1).mean()
        loss = reconstruction + self.anchor_weight * (1.0 - anchor)
        return loss, {"token_nll": float(reconstruction.detach()),
                      "anchor_cosine": float(anchor.detach())}


def build_encoder(base: str) -> Any:
    """The base sentence encoder: "minilm" or a sentence-transformers folder."""
    folder = resolve_folder(base)
    encoder = load_sentence_encoder(folder)
    modules = [type(module).__name__ for module in encoder]
    if modules[:2] != ["Transformer", "Pooling"] or encoder[1].pooling_mode != "mean":
        raise InputFileError(folder, f"not a mean-pooled sentence-transformers model "
                                     f"(modules {modules})")
    return encoder


def save_encoder(sentence_encoder: Any, transformer_weights: dict[str, torch.Tensor],
                 directory: Path, max_tokens: int) -> None:
    """Write the trained encoder as a sentence-transformers folder under ``directory``: a copy
    of ``sentence_encoder`` (the live one trains on) with ``transformer_weights`` in it."""
    saved = copy.deepcopy(sentence_encoder)
    saved[0].auto_model.load_state_dict(transformer_weights)
    saved.max_seq_length = max_tokens
    saved.save(str(directory / ENCODER_DIR))


def load_space(directory: str | Path) -> tuple[ConceptSpaceModel, Any]:
    """A saved space (encoder and decoder, eval mode) and its truecaser."""
    folder = Path(directory) / ENCODER_DIR
    if not folder.is_dir():
        raise InputFileError(directory, f"not a learned space (no {ENCODER_DIR}/)")
    decoder, truecaser = load_model(directory)
    model = ConceptSpaceModel(load_sentence_encoder(folder), decoder, 0, 0.0, 0.0)
    return model.eval(), truecaser
