"""The concept Transformer's configuration and its named architectures.

Architectures are registered with ``@arch(name)`` and derive from each other by changing a few
fields (the fairseq2 style), so a recipe picks ``arch: small`` and overrides single fields
(``arch_overrides: {num_layers: 2}``) instead of spelling out a whole model. This module imports
nothing heavy: recipe validation and ``lcm plugins list`` read it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from lcm.errors import UserError
from lcm.fields import bounded, choice, require_valid

POSITION_ENCODINGS = ("rope", "learned", "none")


@dataclass
class TransformerConfig:
    """The trunk (causal decoder over concepts) plus the PreNet that feeds it."""

    model_dim: int = bounded(256, ge=1)
    """Width of the residual stream (d)."""
    num_layers: int = bounded(4, ge=1)
    """Number of decoder layers."""
    num_heads: int = bounded(4, ge=1)
    """Attention heads per layer; ``model_dim`` must be divisible by it."""
    ffn_inner_dim: int = bounded(704, ge=1)
    """Hidden width of the SwiGLU feed-forward block (the actual width, no 2/3 rescaling)."""
    dropout: float = bounded(0.0, ge=0, lt=1)
    """Dropout on the residual branches (attention and FFN outputs) while training."""
    attention_dropout: float = bounded(0.0, ge=0, lt=1)
    """Dropout on attention weights while training."""
    max_seq_len: int = bounded(2048, ge=1)
    """Longest sequence of concepts the model accepts (sizes learned positions, checks inputs)."""
    position_encoding: str = choice("rope", POSITION_ENCODINGS)
    """How order is encoded: ``rope`` (rotary, in attention), ``learned`` (an embedding added
    to the input; the One-Tower paper model) or ``none``."""
    rope_theta: float = 10_000.0
    """Base of RoPE's frequencies."""
    norm_eps: float = 1e-5
    """Epsilon of RMSNorm."""
    bias: bool = False
    """Biases in the attention and FFN projections (the reference LCM has them)."""
    prenet_bias: bool = True
    """Bias of the PreNet's Linear (concept_dim -> model_dim)."""
    scale_embeddings: bool = False
    """Multiply PreNet outputs by sqrt(model_dim) (the reference's ``scale_embeddings``)."""

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    def problems(self) -> list[str]:
        """What the fields' own ranges cannot say: how the shapes fit together."""
        if self.num_heads > 0 and self.model_dim % self.num_heads:
            return [f"model_dim {self.model_dim} is not divisible by num_heads {self.num_heads}"]
        if self.position_encoding == "rope" and self.num_heads > 0 and self.head_dim % 2:
            return [f"RoPE needs an even head dimension, got {self.head_dim}"]
        return []


_ARCHS: dict[str, Callable[[], TransformerConfig]] = {}
_HEAD_OPTIONS: dict[str, dict[str, Any]] = {}


def arch(name: str, head: Mapping[str, Any] | None = None
         ) -> Callable[[Callable[[], TransformerConfig]], Callable[[], TransformerConfig]]:
    """Register a function returning a ``TransformerConfig`` under ``name``.

    ``head``: ``{"name": ..., **options}`` of the head this size was published with (a
    Two-Tower's denoiser depth is part of its size); see ``head_options``.
    """

    def register(factory: Callable[[], TransformerConfig]) -> Callable[[], TransformerConfig]:
        if name in _ARCHS:
            raise ValueError(f"architecture {name!r} is registered twice")
        _ARCHS[name] = factory
        if head is not None:
            _HEAD_OPTIONS[name] = dict(head)
        return factory

    return register


def arch_names() -> list[str]:
    return sorted(_ARCHS)


def head_options(arch_name: str, head_name: str) -> dict[str, Any]:
    """Options architecture ``arch_name`` sets for head ``head_name`` (empty for other heads).

    ``build_model`` lays a recipe's own head options over these, so ``arch: two_tower_1_6b``
    with ``head: {name: two_tower}`` is the whole published model.
    """
    published = dict(_HEAD_OPTIONS.get(arch_name, {}))
    return published if published.pop("name", None) == head_name else {}


def get_arch(name: str, overrides: Mapping[str, Any] | None = None) -> TransformerConfig:
    """The named architecture with ``overrides`` applied; unknown names and fields are refused."""
    if name not in _ARCHS:
        raise UserError(f"unknown architecture {name!r}; known architectures: {', '.join(arch_names())}")
    config = _ARCHS[name]()
    overrides = dict(overrides or {})
    known = {f.name for f in dataclasses.fields(TransformerConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UserError(f"architecture override(s) {', '.join(unknown)} unknown; "
                        f"known fields: {', '.join(sorted(known))}")
    return require_valid(dataclasses.replace(config, **overrides), f"architecture {name!r}")


# --------------------------------------------------------------------------- named sizes

@arch("toy")
def _toy() -> TransformerConfig:
    """For tests: builds and runs in milliseconds."""
    return TransformerConfig(model_dim=32, num_layers=2, num_heads=2, ffn_inner_dim=64,
                             max_seq_len=256)


@arch("small")
def _small() -> TransformerConfig:
    """Trains on a laptop CPU in minutes (about 3.4M trunk parameters)."""
    return TransformerConfig(model_dim=256, num_layers=4, num_heads=4, ffn_inner_dim=704,
                             max_seq_len=512)


@arch("medium")
def _medium() -> TransformerConfig:
    """A single-GPU model (about 50M trunk parameters)."""
    return TransformerConfig(model_dim=768, num_layers=8, num_heads=12, ffn_inner_dim=2048,
                             max_seq_len=2048, dropout=0.1)


@arch("base_1_6b")
def _base_1_6b() -> TransformerConfig:
    """Base-LCM 1.6B of the reference code (``base_lcm_1_6B``): d=2048, 32 layers, 16 heads,
    SwiGLU of 4d scaled by 2/3 and rounded up to a multiple of 256 (5632), biases everywhere."""
    return TransformerConfig(model_dim=2048, num_layers=32, num_heads=16, ffn_inner_dim=5632,
                             max_seq_len=4096, dropout=0.1, bias=True)


@arch("base_7b")
def _base_7b() -> TransformerConfig:
    """A 7B-class trunk in the paper's style: d=4096, 32 layers, 32 heads."""
    return dataclasses.replace(_base_1_6b(), model_dim=4096, num_heads=32, ffn_inner_dim=11008)


@arch("two_tower_1_6b", head={"name": "two_tower", "denoiser_layers": 13})
def _two_tower_1_6b() -> TransformerConfig:
    """Two-Tower 1.6B of the reference (``two_tower_diffusion_lcm_1_6B``): a 5-layer
    contextualizer (this trunk) and a 13-layer denoiser (head option), d=2048, 16 heads,
    SwiGLU 5632, biases; the reference states 1,635,101,696 parameters."""
    return dataclasses.replace(_base_1_6b(), num_layers=5)


@arch("two_tower_7b", head={"name": "two_tower", "denoiser_layers": 14})
def _two_tower_7b() -> TransformerConfig:
    """Two-Tower 7B of the reference (``two_tower_diffusion_lcm_7B``): 5 contextualizer and
    14 denoiser layers, d=4096, 32 heads, SwiGLU 11008; 6,930,781,696 parameters."""
    return dataclasses.replace(_base_7b(), num_layers=5)


@arch("one_tower_1_6b")
def _one_tower_1_6b() -> TransformerConfig:
    """The paper's One-Tower 1.6B ablation: 32 layers, 32 heads, learned positions, and an
    FFN of 8192 — two matrices there; here a SwiGLU of about as many parameters (three
    matrices of 5376 = 2/3 x 8192 rounded down to 256), 1,611,949,056 in all."""
    return dataclasses.replace(_base_1_6b(), num_heads=32, ffn_inner_dim=5376,
                               position_encoding="learned")


@arch("one_tower_7b")
def _one_tower_7b() -> TransformerConfig:
    """A 7B-class One-Tower (not in the paper): the ``base_7b`` trunk with learned positions."""
    return dataclasses.replace(_base_7b(), position_encoding="learned")
