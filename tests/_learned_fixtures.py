"""A toy learned decoder's recipe and the ``learned`` decoder of a model folder, for the
decoder's tests and the bad-input matrix."""
from __future__ import annotations

from pathlib import Path

from lcm.components import component_options
from lcm.plugins.learned.decoder import LearnedDecoder
from lcm.registry import build_registry
from tests._data_fixtures import write_recipe

TRAINED = 8  # sentences the toy decoder learns by heart


def toy_recipe(directory: Path, shards: Path, output: Path, steps: int, **extra: str) -> Path:
    """A tiny random-weight causal BERT (MiniLM's tokenizer) on the first sentences."""
    return write_recipe(directory / f"{output.name}.yaml", (
        "task: train_decoder\n"
        f"output: {output}\n"
        f"data: {{shards: {shards}, batch_size: 8, max_sentences: {TRAINED}, "
        f"noise_levels: [{extra.get('noise', '0.0')}]}}\n"
        "model: {base: random, hidden_size: 64, num_layers: 2, num_heads: 2, "
        "intermediate_size: 128, prefix_hidden: 128, max_tokens: 24}\n"
        f"train: {{steps: {steps}, lr: 3e-3, warmup_steps: 5, checkpoint_every: "
        f"{extra.get('checkpoint_every', steps)}, keep_checkpoints: 3, log_every: 5, "
        f"export_dtype: fp32, seed: 0}}\n"
        "distributed: {cpu_threads: 1}\n"
        f"evaluation: {{shards: {extra.get('evaluation', 'null')}, sentences: {TRAINED}, "
        "noise_levels: [0.0]}\n"))


def learned(model: Path, encoder=None, **options) -> LearnedDecoder:
    """The decoder of ``model``; ``encoder`` (built) reranks, as an ``encoder`` section would."""
    if encoder is not None:
        options["encoder"] = {"name": "minilm"}  # what a recipe says; the built one is passed
    return LearnedDecoder(component_options(LearnedDecoder, {"model": str(model), **options},
                                            build_registry()), encoder=encoder)
