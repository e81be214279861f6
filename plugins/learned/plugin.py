"""Registers the ``train_decoder`` and ``train_space`` tasks, the ``learned`` decoder and the
``learned`` encoder (entry point ``learned``)."""
from __future__ import annotations

from lcm.hookspecs import hookimpl
from lcm.plugins.learned.decoder import LearnedDecoder
from lcm.plugins.learned.space.encoder import LearnedEncoder
from lcm.plugins.learned.space.task import TrainSpace
from lcm.plugins.learned.task import TrainDecoder


@hookimpl
def register_tasks(register) -> None:
    register(TrainDecoder)
    register(TrainSpace)


@hookimpl
def register_decoders(register) -> None:
    register(LearnedDecoder)


@hookimpl
def register_encoders(register) -> None:
    register(LearnedEncoder)
