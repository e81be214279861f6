"""The ``evaluate`` task: one command, one table printed, one JSON written.

``mode: generation`` scores generated outputs (ROUGE-L, OVL-3, REP-4) beside lead-k and
random-k extractive baselines; ``mode: pretraining`` scores a checkpoint's next-concept
predictions on held-out shards (ℓ2, contrastive accuracy, ...) beside uninformed predictors.
Each mode reads only its own section of the recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from lcm.config import choice, path
from lcm.interfaces import Task

MODES = ("generation", "pretraining")


@dataclass
class GenerationOptions:
    input: Optional[str] = path(None, must_exist=True, help="JSONL: source, reference[, prediction]")
    k: Optional[int] = None
    """Sentences taken by lead-k / random-k; null = as many as each example's reference has."""
    seed: int = 0
    """Seed of random-k (each example's draw depends only on the seed and its line order)."""
    language: str = "en"
    """Language of the texts, for sentence splitting of sources and references given as text."""
    max_chars: int = 200
    """Cap on sentence length when splitting text (as ``prepare`` does)."""
    source_field: str = "source"
    reference_field: str = "reference"
    prediction_field: str = "prediction"


@dataclass
class EvaluateConfig:
    mode: str = choice("generation", MODES, help="what to evaluate")
    output: str = path("runs/evaluate/report.json", output=True, help="JSON report written here")
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    progress: bool = True
    """Show progress bars (stderr)."""


_REQUIRED = {"generation": ("input",)}


class Evaluate(Task):
    name = "evaluate"
    description = "Score generated text (ROUGE-L, OVL-3, REP-4 vs lead-k/random-k) as a table and JSON."
    Config = EvaluateConfig

    @staticmethod
    def validate_extra(body: dict, registry: Any, result: Any, where: str) -> None:
        """The section of the chosen mode must name its inputs."""
        mode = body.get("mode", "generation")
        section = body.get(mode) or {}
        for name in _REQUIRED.get(mode, ()):
            if isinstance(section, dict) and section.get(name) is None:
                prefix = f"{where}." if where else ""
                result.problems.append(f"{prefix}{mode}.{name}: required when mode is {mode!r}")

    def run(self, recipe: EvaluateConfig) -> Any:
        from rich.console import Console

        report = _run_generation(recipe.generation, recipe.progress)
        report.settings["mode"] = recipe.mode
        Console().print(report.table())
        written = report.write_json(recipe.output)
        Console(stderr=True).print(f"wrote {written}")
        return report


def _run_generation(options: GenerationOptions, progress: bool) -> Any:
    from lcm.data.segment import segment_document
    from lcm.evaluate.generation import FieldNames, evaluate_generation, read_examples

    fields = FieldNames(options.source_field, options.reference_field, options.prediction_field)
    examples = read_examples(
        options.input, lambda text: segment_document(text, options.language, options.max_chars), fields)
    report = evaluate_generation(examples, options.k, options.seed, progress)
    report.settings["input"] = str(options.input)
    return report
