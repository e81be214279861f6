"""An example third-party lcm plugin: registers one encoder, one decoder and one head."""
from __future__ import annotations

from lcm.hookspecs import hookimpl

from lcm_example_plugin.bag_of_words import BagOfWordsEncoder, KeywordDecoder
from lcm_example_plugin.residual_head import ResidualMseHead


@hookimpl
def register_encoders(register) -> None:
    register(BagOfWordsEncoder)


@hookimpl
def register_decoders(register) -> None:
    register(KeywordDecoder)


@hookimpl
def register_heads(register) -> None:
    register(ResidualMseHead)
