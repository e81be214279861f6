"""Registers the built-in tasks through the same hook a third-party plugin uses."""
from __future__ import annotations

from lcm.hookspecs import hookimpl
from lcm.tasks.evaluate import Evaluate
from lcm.tasks.fit_normalizer import FitNormalizer
from lcm.tasks.fit_salience import FitSalience
from lcm.tasks.fit_quantizer import FitQuantizer
from lcm.tasks.generate import Generate
from lcm.tasks.pipeline import Pipeline
from lcm.tasks.prepare import Prepare
from lcm.tasks.round_trip import RoundTrip
from lcm.tasks.summarize import Summarize
from lcm.tasks.train import Train


@hookimpl
def register_tasks(register) -> None:
    register(Pipeline)
    register(Prepare)
    register(Train)
    register(FitNormalizer)
    register(FitQuantizer)
    register(FitSalience)
    register(Evaluate)
    register(Generate)
    register(Summarize)
    register(RoundTrip)
