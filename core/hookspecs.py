"""The hooks a plugin implements. Each receives a ``register`` callback (the style of
simonw/llm), so one plugin module can register several components."""
from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("lcm")
hookimpl = pluggy.HookimplMarker("lcm")

Register = Callable[[type], None]


@hookspec
def register_encoders(register: Register) -> None:
    """Register Encoder subclasses: turn sentences or speech segments into concept vectors."""


@hookspec
def register_decoders(register: Register) -> None:
    """Register Decoder subclasses: turn concept vectors back into text."""


@hookspec
def register_heads(register: Register) -> None:
    """Register Head subclasses: a training objective and a way to produce the next concept."""


@hookspec
def register_tasks(register: Register) -> None:
    """Register Task subclasses: what a recipe's ``task:`` runs (prepare, train, generate, ...)."""
