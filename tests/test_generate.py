"""The shared generation loop (stopping rules, padding, seeding) and the `generate` task."""
from __future__ import annotations

import functools
import json

import pytest
import torch

import lcm.registry
from lcm.cli import main
from lcm.errors import ConceptSpaceMismatchError
from lcm.generate.loop import STOP_END, STOP_MAX_LENGTH, STOP_REPETITION, StopRules, generate
from lcm.model.checkpoint import save_checkpoint
from lcm.model.heads import HeadModule
from lcm.pipeline.checks import check_spaces
from lcm.tasks.generate import format_continuation
from tests._encoder_fixtures import HashedWordsEncoder, WordsConfig
from tests._fake_plugins import plugin_module
from tests._model_fixtures import TOY_SPACE, model_of, random_concepts, toy_model, toy_normalizer

D = TOY_SPACE.dim
basis = torch.eye(D)


class ScriptedHead(HeadModule):
    """Produces ``script[:, step]`` (plus seeded noise of ``noise`` scale): output we control."""

    name = "scripted"
    script: torch.Tensor
    noise = 0.0

    def start(self, backbone, state):
        super().start(backbone, state)
        state.extra = torch.arange(state.batch_size)  # the document of each row

    def keep_rows(self, state, rows):
        super().keep_rows(state, rows)
        state.extra = state.extra[rows]

    def next_concept(self, model, state):
        self.batch_sizes.append(state.batch_size)
        concept = self.script[state.extra, state.step].clone()
        if self.noise:
            concept += self.noise * state.generators.randn(concept.shape[1:])
        return concept


@functools.lru_cache(maxsize=1)
def scripted_registry():
    return lcm.registry.build_registry(extra_plugins=[
        plugin_module("scripted_heads", register_heads=lambda register: register(ScriptedHead))])


def scripted_model(script: torch.Tensor, noise: float = 0.0):
    model = model_of("toy", {}, {"name": "scripted"}, TOY_SPACE, registry=scripted_registry())
    model.head.script, model.head.noise, model.head.batch_sizes = script, noise, []
    return model


def test_each_document_stops_for_its_own_reason():
    end, steps = basis[0], 6
    script = torch.stack([
        torch.stack([basis[1], basis[2], 2 * end, basis[3], basis[4], basis[5]]),  # ends after 2
        torch.stack([basis[3], basis[4], basis[5], 1.5 * basis[5], basis[6], basis[1]]),  # repeats
        torch.stack([basis[i % D] for i in range(1, steps + 1)]),  # never stops early
        torch.stack([basis[7]] * steps),  # repeats the prompt's last concept at once
    ])
    prompts = [basis[7][None], torch.stack([basis[6], basis[7]]), basis[7][None], basis[7][None]]
    model = scripted_model(script)
    out = generate(model, prompts, StopRules(5, end_concept=end))
    assert [c.stop_reason for c in out] == [STOP_END, STOP_REPETITION, STOP_MAX_LENGTH, STOP_REPETITION]
    assert [len(c.concepts) for c in out] == [2, 3, 5, 0]
    assert model.head.batch_sizes == [4, 3, 3, 2, 1]  # a stopped document leaves the batch
    assert torch.equal(out[0].concepts, script[0, :2])
    assert torch.equal(out[2].concepts, script[2, :5])


class _Shifted:
    """A normaliser that moves the encoder's space by ``offset``."""

    def __init__(self, offset: torch.Tensor):
        self.offset = offset

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.offset

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offset


def test_stopping_is_judged_in_the_original_space():
    """A concept far from the end concept when normalised may be close to it de-normalised."""
    script = torch.stack([torch.stack([basis[1], basis[2], basis[3]])])
    rules = StopRules(3, end_concept=basis[0], repetition_threshold=None)
    model = scripted_model(script)
    assert generate(model, [basis[7][None]], rules)[0].stop_reason == STOP_MAX_LENGTH
    shifted = generate(model, [basis[7][None] + 10 * basis[0]], rules, normalizer=_Shifted(10 * basis[0]))
    assert shifted[0].stop_reason == STOP_END and len(shifted[0].concepts) == 0


def test_seeded_sampling_is_reproducible():
    script = torch.zeros(2, 4, D)
    rules = StopRules(4, repetition_threshold=None)
    model = scripted_model(script, noise=1.0)
    prompts = [basis[1][None], basis[2][None]]
    a, b = generate(model, prompts, rules, seed=3), generate(model, prompts, rules, seed=3)
    c = generate(model, prompts, rules, seed=4)
    assert all(torch.equal(x.concepts, y.concepts) for x, y in zip(a, b))
    assert not torch.equal(a[0].concepts, c[0].concepts)


def test_batched_generation_matches_one_document_at_a_time_with_either_padding():
    model = toy_model(seed=1)
    prompts = [random_concepts(1, n, seed=n)[0] for n in (4, 1, 6)]
    rules = StopRules(4, repetition_threshold=None)
    alone = [generate(model, [p], rules)[0].concepts for p in prompts]
    for side in ("left", "right"):
        batched = generate(model, prompts, rules, padding_side=side)
        for got, want in zip((c.concepts for c in batched), alone):
            assert got.shape == (4, D)
            assert torch.allclose(got, want, atol=1e-5), side


# --------------------------------------------------------------------------- the task

@pytest.fixture
def registry():
    """The installed plugins plus the test encoder, as the CLI and the task see them."""
    registry = lcm.registry.build_registry(extra_plugins=[
        plugin_module("test_encoders", register_encoders=lambda register: register(HashedWordsEncoder))])
    return registry


def write_recipe(tmp_path, checkpoint, docs, **extra) -> str:
    recipe = {
        "task": "generate", "model": str(checkpoint), "input": str(docs),
        "output": str(tmp_path / "out" / "continuations.jsonl"),
        "encoder": {"name": "hashed_words"},
        "decoder": {"name": "retrieval", "space": TOY_SPACE.name, "dim": D},
        "prompt_concepts": 2, "max_new_concepts": 3, "batch_size": 2, **extra,
    }
    path = tmp_path / "generate.yaml"
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return str(path)


def test_generate_task_end_to_end_through_the_cli(tmp_path, registry, capsys):
    checkpoint = save_checkpoint(tmp_path / "model", toy_model(seed=2), toy_normalizer())
    docs = tmp_path / "docs.txt"
    docs.write_text("The cat sat. It purred. Then it slept. The end came.\n"
                    "   \n"
                    "Rain fell on the hills. Rivers rose. Farmers waited.\n"
                    "One short document.\n")
    assert main(["run", write_recipe(tmp_path, checkpoint, docs)], registry) == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "continuations.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [["The cat sat.", "It purred."],
                                           ["Rain fell on the hills.", "Rivers rose."],
                                           ["One short document."]]
    for row in rows:
        assert row["stop_reason"] in (STOP_END, STOP_REPETITION, STOP_MAX_LENGTH)
        assert len(row["generated"]) <= 3
        # each document's decoder observed that document's prompt alone: nothing leaks across
        assert set(row["generated"]) <= set(row["prompt"])
    printed = capsys.readouterr()
    assert "continued 3 of 4 documents" in printed.out and "1 empty document" in printed.out
    assert all(format_continuation(row) in printed.out for row in rows)


def test_a_model_of_another_space_is_refused(tmp_path, registry, capsys):
    checkpoint = save_checkpoint(tmp_path / "model", toy_model(), toy_normalizer())
    docs = tmp_path / "docs.txt"
    docs.write_text("A sentence. Another one.\n")
    recipe = write_recipe(tmp_path, checkpoint, docs, encoder={"name": "hashed_words", "dim": 6})
    assert main(["run", recipe], registry) == 2
    assert "concept spaces differ" in capsys.readouterr().err
    encoder = HashedWordsEncoder(WordsConfig(space="other"))
    with pytest.raises(ConceptSpaceMismatchError, match="other"):
        check_spaces(TOY_SPACE, encoder, encoder)
