"""The ``evaluate`` task: one command, one table printed, one JSON written.

``mode: generation`` scores generated outputs (ROUGE-L, OVL-3, REP-4) beside lead-k and
random-k extractive baselines (and centroid-k, TextRank-k given an encoder); ``mode: pretraining`` scores a checkpoint's next-concept
predictions on held-out shards (ℓ2, contrastive accuracy, ...) beside uninformed predictors.
Each mode reads only its own section of the recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from lcm.data.segment import segment_document
from lcm.evaluate.generation import FieldNames, evaluate_generation, read_examples
from lcm.evaluate.mutual_information import ContextMutualInformation
from lcm.evaluate.options import PretrainingOptions
from lcm.evaluate.pretraining import evaluate_pretraining
from lcm.fields import ComponentSection, choice, component, path
from lcm.interfaces import RunContext, Task
from lcm.model.checkpoint import load_checkpoint

if TYPE_CHECKING:
    from lcm.registry import Registry

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
    encoder: Optional[ComponentSection] = component("encoder", help=(
        "encodes each source's sentences for the centroid-k and TextRank-k baselines; "
        "null: lead-k and random-k only"))


@dataclass
class PretrainingSection(PretrainingOptions):
    checkpoint: Optional[str] = path(None, must_exist=True, space_source=True,
                                     help="checkpoint directory (train's output)")
    shards: Optional[str] = path(None, must_exist=True, space_source=True,
                                 help="held-out shard directory (prepare's output)")
    encoder: Optional[ComponentSection] = component("encoder", help="re-encodes decoded predictions (round-trip ℓ2)")
    decoder: Optional[ComponentSection] = component("decoder", help="decodes predictions (round-trip ℓ2, MI)")
    mi_language_model: Optional[str] = path(
        None, must_exist=True, help="local directory of a causal LM (transformers) for MI")
    device: str = "cpu"
    """Torch device of the model (and of the MI language model)."""


@dataclass
class EvaluateConfig:
    mode: str = choice("generation", MODES, help="what to evaluate")
    output: str = path("runs/evaluate/report.json", output=True, help="JSON report written here")
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    pretraining: PretrainingSection = field(default_factory=PretrainingSection)
    progress: bool = True
    """Show progress bars (stderr)."""


_REQUIRED = {"generation": ("input",), "pretraining": ("checkpoint", "shards")}


class Evaluate(Task):
    name = "evaluate"
    description = ("Score generated text (ROUGE-L, OVL-3, REP-4 vs lead-k/random-k) or a checkpoint's "
                   "next-concept predictions (ℓ2, CA, PAR, ℓ2-r, MI vs uninformed predictors).")
    Config = EvaluateConfig

    @staticmethod
    def validate_extra(body: dict, registry: "Registry", result: Any, where: str) -> None:
        """The section of the chosen mode must name its inputs."""
        mode = body.get("mode", "generation")
        section = body.get(mode) or {}
        if not isinstance(section, dict):
            return  # the schema check has reported it
        label = f"{where}.{mode}" if where else mode
        for name in _REQUIRED.get(mode, ()):
            if section.get(name) is None:
                result.problems.append(f"{label}.{name}: required when mode is {mode!r}")
        if mode == "pretraining" and section.get("decoder") is None:
            for name, metric in (("encoder", "round-trip ℓ2"), ("mi_language_model", "MI")):
                if section.get(name) is not None:
                    result.problems.append(f"{label}.{name}: {metric} also needs a decoder")

    def run(self, recipe: EvaluateConfig, context: RunContext) -> Any:
        if recipe.mode == "pretraining":
            report = _run_pretraining(recipe.pretraining, recipe.progress, context.registry)
        else:
            report = _run_generation(recipe.generation, recipe.progress)
        report.settings["mode"] = recipe.mode
        context.console.print(report.table())
        written = report.write_json(recipe.output)
        context.console.outcome(f"evaluated ({recipe.mode}); wrote {written}",
                                {"task": "evaluate", "mode": recipe.mode, "output": str(written),
                                 **report.to_dict()})
        return report


def _run_generation(options: GenerationOptions, progress: bool) -> Any:
    fields = FieldNames(options.source_field, options.reference_field, options.prediction_field)
    examples = read_examples(
        options.input, lambda text: segment_document(text, options.language, options.max_chars), fields)
    encode: Any = None
    if options.encoder is not None:
        encoder = options.encoder.create()

        def encode(sentences: list[str]) -> Any:
            return encoder.encode(sentences).float().numpy()
    report = evaluate_generation(examples, options.k, options.seed, progress, encode)
    report.settings["input"] = str(options.input)
    return report


def _run_pretraining(options: PretrainingSection, progress: bool, registry: "Registry") -> Any:
    loaded = load_checkpoint(options.checkpoint, registry, options.device)
    encoder = options.encoder.create() if options.encoder else None
    decoder = options.decoder.create() if options.decoder else None
    mi_scorer = (ContextMutualInformation(options.mi_language_model, options.device)
                 if options.mi_language_model else None)
    return evaluate_pretraining(loaded, options.shards, options, encoder=encoder, decoder=decoder,
                                mi_scorer=mi_scorer, progress=progress)
