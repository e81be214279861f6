"""Fixtures of the summarize and serve tests: a head whose summary we choose, a story, a
checkpoint of that head, and recipe writing."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

from lcm.model.checkpoint import save_checkpoint
from lcm.model.heads import HeadModule
from tests._encoder_fixtures import HashedWordsEncoder
from tests._fake_plugins import plugin_module
from tests._model_fixtures import TOY_SPACE, model_of, toy_normalizer


@dataclass
class CopyConfig:
    picks: list[int] = field(default_factory=list)
    """Positions of prompt concepts to emit, in order (the summary we want)."""
    end: list[float] = field(default_factory=list)
    """The normalised concept emitted after the picks (e.g. the end concept); empty: repeat."""


class CopySourceHead(HeadModule):
    """Emits chosen concepts of each document's prompt, then ``end``: a summariser whose output
    is known, saved and loaded through the checkpoint path like any head (its options are the
    head spec the checkpoint records)."""

    name = "copy_source"
    Config = CopyConfig

    def next_concept(self, model, state):
        rows = []
        for context, mask in zip(state.context, state.context_mask):
            prompt = context[mask]  # this document's real concepts, prompt first
            if state.step < len(self.config.picks):
                rows.append(prompt[self.config.picks[state.step]])
            elif self.config.end:
                rows.append(torch.tensor(self.config.end, dtype=context.dtype))
            else:
                rows.append(prompt[-1])
        return torch.stack(rows)


def copy_head_plugin():
    return plugin_module("summarize_test_heads", register_heads=lambda register: register(CopySourceHead))


def write_recipe(tmp_path, **fields) -> str:
    """A summarize recipe (JSON is YAML) writing its JSON under tmp_path/out."""
    recipe = {"task": "summarize", "output": str(tmp_path / "out" / "summary.json"), **fields}
    target = tmp_path / "summarize.yaml"
    target.write_text(json.dumps(recipe))
    return str(target)


def read_report(tmp_path) -> dict:
    return json.loads((tmp_path / "out" / "summary.json").read_text())


SENTENCES = ["The lighthouse stood on a cliff.", "Ships passed it every night.",
             "A keeper lived inside with his dog.", "Storms came in the winter.",
             "One night the lamp went out.", "The keeper climbed the stairs in the dark.",
             "He lit the lamp again before dawn.", "No ship was lost that year."]
DECODER = {"name": "retrieval", "space": TOY_SPACE.name, "dim": TOY_SPACE.dim}


def copying_checkpoint(tmp_path, registry, picks, end_sentence="End of text.", **extra):
    """A toy model whose head emits the prompt's concepts at ``picks``, then the end concept."""
    normalizer = toy_normalizer()
    end = normalizer.normalize(HashedWordsEncoder().encode([end_sentence])[0]).tolist()
    model = model_of("toy", {}, {"name": "copy_source", "picks": picks, "end": end}, TOY_SPACE,
                        registry=registry)
    return save_checkpoint(tmp_path / "model", model, normalizer, extra=extra)
