"""What the serve tests share: a registry with test encoders and the copying head, a service
over a copying checkpoint, and the last update a request yields."""
from __future__ import annotations

from pathlib import Path

import pytest

import lcm.registry
from lcm.config import resolve_recipe
from lcm.pipeline.pipeline import ConceptPipeline
from lcm.serve.service import Service
from tests._encoder_fixtures import HashedWordsEncoder, ScriptedRecordingEncoder
from tests._fake_plugins import plugin_module
from tests._summarize_fixtures import (DECODER, SENTENCES, copy_head_plugin, copying_checkpoint,
                                      write_recipe)


@pytest.fixture
def registry():
    """The installed plugins, a text and a scripted-recording encoder, and the copying head."""
    encoders = plugin_module("serve_test_encoders", register_encoders=lambda register: [
        register(c) for c in (HashedWordsEncoder, ScriptedRecordingEncoder)])
    return lcm.registry.build_registry(extra_plugins=[encoders, copy_head_plugin()])


def service_of(tmp_path, registry, encoder="hashed_words", picks=(1, 0), **fields) -> Service:
    checkpoint = copying_checkpoint(tmp_path, registry, picks=list(picks))
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(text_input(tmp_path)),
                          encoder={"name": encoder}, text_encoder={"name": "hashed_words"},
                          decoder=DECODER, max_summary_concepts=4, **fields)
    config = resolve_recipe(recipe, (), registry).config
    return Service(ConceptPipeline.from_summarize_recipe(config, registry))


def text_input(tmp_path) -> Path:
    path = tmp_path / "story.txt"
    path.write_text(" ".join(SENTENCES) + "\n")
    return path


def last(updates) -> tuple[str, str]:
    """The final (status, result) a request yields; each update before it is a status."""
    updates = list(updates)
    assert all("lcm-status" in status for status, _ in updates)
    return updates[-1]
