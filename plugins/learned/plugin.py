"""Registers the ``train_decoder`` task and the ``learned`` decoder (entry point ``learned``)."""
from __future__ import annotations

from lcm.hookspecs import hookimpl
from lcm.plugins.learned.decoder import LearnedDecoder
from lcm.plugins.learned.task import TrainDecoder


@hookimpl
def register_tasks(register) -> None:
    register(TrainDecoder)


@hookimpl
def register_decoders(register) -> None:
    register(LearnedDecoder)
