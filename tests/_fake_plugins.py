"""Deterministic fake components for tests of the plugin and recipe machinery."""
from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Optional

from lcm.fields import ComponentSection, component, path
from lcm.hookspecs import hookimpl
from lcm.interfaces import ConceptSpace, Decoder, Encoder, Task


@dataclass
class FakeEncoderConfig:
    dim: int = 4
    space: str = "fake"
    scale: float = 1.0


class FakeEncoder(Encoder):
    name = "fake_enc"
    description = "length-based vectors"
    Config = FakeEncoderConfig

    @classmethod
    def concept_space(cls, config):
        return ConceptSpace(config.space, config.dim)

    def encode(self, inputs):
        import torch

        return torch.tensor([[len(s) * self.config.scale] * self.config.dim for s in inputs])


@dataclass
class FakeDecoderConfig:
    dim: int = 4
    space: str = "fake"


class FakeDecoder(Decoder):
    name = "fake_dec"
    Config = FakeDecoderConfig

    @classmethod
    def concept_space(cls, config):
        return ConceptSpace(config.space, config.dim)

    def decode(self, vectors, language=None):
        return [f"len{int(v[0])}" for v in vectors]


@dataclass
class EchoConfig:
    message: str = "hello"
    repeat: int = 1
    encoder: ComponentSection = component("encoder", default="fake_enc")
    decoder: Optional[ComponentSection] = component("decoder")
    input: Optional[str] = path(None, must_exist=True)
    output: Optional[str] = path(None, output=True)


class EchoTask(Task):
    """Prints its message; records what it ran with (for assertions)."""

    name = "echo"
    Config = EchoConfig
    runs: list = []

    def run(self, recipe, context):
        EchoTask.runs.append(recipe)
        print(recipe.message * recipe.repeat)


def plugin_module(name: str = "fake_plugin", **hooks) -> types.ModuleType:
    """A module object carrying the given hook implementations."""
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, hookimpl(fn))
    return module


def standard_plugins() -> list[types.ModuleType]:
    return [plugin_module(
        "fake_plugin",
        register_encoders=lambda register: register(FakeEncoder),
        register_decoders=lambda register: register(FakeDecoder),
        register_tasks=lambda register: register(EchoTask),
    )]
