"""The quantised heads quant_d (Quant-LCM-d) and quant_c (Quant-LCM-c): training, generation,
sampling controls, self-contained checkpoints, quantizer checks and their recipes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lcm.config import load_recipe, resolve_recipe, validate_recipe
from lcm.errors import ConceptSpaceMismatchError, InputFileError, UserError
from lcm.generate.loop import StopRules, generate
from lcm.interfaces import ConceptSpace
from lcm.model.checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint
from lcm.generate.session import DecodingSession
from lcm.model.randomness import RowGenerators
from lcm.quantize.options import FitOptions
from lcm.quantize.rvq import ResidualQuantizer, chunked, fit_residual_quantizer
from lcm.registry import get_registry
from tests._model_fixtures import model_of, toy_normalizer
from tests._head_fixtures import SPACE as TASK_SPACE
from tests._head_fixtures import fit, rotation_task
from tests._quant_fixtures import code_task, fit_tiny_quantizer, head_scores, uninformed_scores
from tests._train_fixtures import SPACE as WALK_SPACE
from tests._run import run_resolved
from tests._train_fixtures import (restored_process_state, train_recipe, walk_documents, write_shards,
                                   write_yaml)

REPO = Path(__file__).resolve().parents[1]
SPACE = ConceptSpace("quant_test", 8)
HEADS = ["quant_d", "quant_c"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Toy models run fastest on one thread, and far faster than several on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def quantizer_dir(tmp_path_factory) -> Path:
    return fit_tiny_quantizer(tmp_path_factory.mktemp("quant") / "quantizer", SPACE)


def model_with(head: str, quantizer: Path, seed: int = 0, **options):
    torch.manual_seed(seed)
    return model_of("toy", {}, {"name": head, "quantizer": str(quantizer), **options}, SPACE)


def read_prompts(model, concepts: torch.Tensor, generator_seed: int = 0) -> DecodingSession:
    """A decoding session that has read ``concepts`` (B, S, D) as prompts."""
    mask = torch.ones(concepts.shape[:2], dtype=torch.bool)
    generators = RowGenerators.seeded(generator_seed, len(concepts))
    return DecodingSession(model, concepts, mask, generators).start()


# --------------------------------------------------------------------------- training

@pytest.mark.parametrize("head", HEADS)
def test_loss_is_finite_and_falls_on_codebook_sequences(head, quantizer_dir):
    quantizer = ResidualQuantizer.load(quantizer_dir)
    task = code_task(quantizer, documents=24, length=8)
    mask = torch.ones(task.concepts.shape[:2], dtype=torch.bool)
    mask[::3, 6:] = False  # right padding must not count
    model = model_with(head, quantizer_dir).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model(task.concepts, mask)
        assert torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
    assert out.metrics["concepts"] == float((mask[:, 1:] & mask[:, :-1]).sum())
    assert torch.equal(model.head.codebooks, quantizer.codebooks)  # frozen: never trained
    assert "codebooks" not in dict(model.named_parameters())


@pytest.mark.parametrize("head", HEADS)
def test_a_batch_without_next_concept_pairs_has_zero_loss(head, quantizer_dir):
    model = model_with(head, quantizer_dir)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    mask[:, 0] = True  # single-concept documents: nothing to predict
    out = model(torch.randn(2, 3, SPACE.dim), mask)
    assert float(out.loss.detach()) == 0.0 and out.metrics["concepts"] == 0.0
    assert all(value == value for value in out.metrics.values())  # no NaN


@pytest.mark.parametrize("head", HEADS)
def test_beats_an_uninformed_predictor_on_a_noisy_function_of_the_context(head, tmp_path):
    """Codebooks fitted on the training concepts (as fit_quantizer does), then the head trained
    and scored teacher-forced on held-out documents, in l2 and contrastive accuracy (CA)."""
    train, held_out = rotation_task(96, 10).split(24)
    vectors = train.concepts[train.mask]
    quantizer = fit_residual_quantizer(chunked(vectors, 512), FitOptions(
        num_codebooks=4, codebook_size=32, iterations=5), TASK_SPACE, progress=False)
    quantizer.save(tmp_path / "quantizer")
    torch.manual_seed(0)
    model = model_of("toy", {}, {"name": head, "quantizer": str(tmp_path / "quantizer")},
                        TASK_SPACE)
    fit(model, train, steps=120)
    scores = head_scores(model, held_out.concepts, held_out.mask)
    blind = uninformed_scores(vectors, held_out.concepts, held_out.mask)
    print(f"{head}: l2 {scores.l2:.3f} CA {scores.ca:.3f}; uninformed l2 {blind.l2:.3f} "
          f"CA {blind.ca:.3f}")
    assert blind.ca == pytest.approx(0.5, abs=0.05)
    assert scores.ca > 0.8 and scores.l2 < 0.75 * blind.l2


# --------------------------------------------------------------------------- generation

@pytest.mark.parametrize("head", HEADS)
def test_generated_concepts_are_codebook_points(head, quantizer_dir):
    codebooks = ResidualQuantizer.load(quantizer_dir).codebooks
    prompts = torch.randn(4, 3, SPACE.dim)
    one_level = model_with(head, quantizer_dir, num_codebooks=1).eval()
    concept = read_prompts(one_level, prompts).propose()
    distances = torch.cdist(concept, codebooks[0]).min(dim=1).values  # to the nearest codeword
    assert distances.max() < 1e-5

    model = model_with(head, quantizer_dir).eval()
    session = read_prompts(model, prompts)
    concept, state = session.propose(), session.state
    assert concept.shape == (4, SPACE.dim) and state.extra.shape == (4, 3)
    decoded = ResidualQuantizer(codebooks).decode(state.extra)
    torch.testing.assert_close(concept, decoded)


def test_quant_c_snaps_only_the_first_codebooks_when_asked(quantizer_dir):
    model = model_with("quant_c", quantizer_dir, snap_codebooks=2).eval()
    session = read_prompts(model, torch.randn(2, 3, SPACE.dim))
    session.propose()
    assert session.state.extra.shape == (2, 2)
    with pytest.raises(UserError, match="snap_codebooks=4"):
        model_with("quant_c", quantizer_dir, snap_codebooks=4)


def test_temperature_zero_is_deterministic_and_top_k_one_equals_argmax(quantizer_dir):
    prompts = torch.randn(6, 3, SPACE.dim)

    def codes(seed: int, **sampling) -> torch.Tensor:
        model = model_with("quant_d", quantizer_dir, **sampling).eval()
        session = read_prompts(model, prompts, generator_seed=seed)
        session.propose()
        return session.state.extra

    greedy = codes(0, temperature=0.0)
    assert torch.equal(greedy, codes(1, temperature=0.0))
    assert torch.equal(greedy, codes(2, temperature=1.0, top_k=1))
    assert not torch.equal(greedy, codes(3, temperature=5.0))  # sampling does differ


def test_seeded_sampling_is_reproducible(quantizer_dir):
    model = model_with("quant_d", quantizer_dir, temperature=1.0, top_k=4).eval()
    prompts = [torch.randn(n, SPACE.dim) for n in (3, 2, 4)]
    rules = StopRules(max_new_concepts=5, repetition_threshold=None)
    first = generate(model, prompts, rules, seed=11)
    again = generate(model, prompts, rules, seed=11)
    other = generate(model, prompts, rules, seed=12)
    assert all(torch.equal(a.concepts, b.concepts) for a, b in zip(first, again))
    assert not all(torch.equal(a.concepts, b.concepts) for a, b in zip(first, other))


# --------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("head", HEADS)
def test_checkpoint_round_trip_is_self_contained(head, tmp_path):
    quantizer = fit_tiny_quantizer(tmp_path / "quantizer", SPACE, seed=4)
    model = model_with(head, quantizer, temperature=0.0) if head == "quant_d" else \
        model_with(head, quantizer)
    model.eval()
    save_checkpoint(tmp_path / "model", model, toy_normalizer(SPACE))
    shutil.rmtree(quantizer)  # the checkpoint must not need it
    meta = json.loads((tmp_path / "model" / CONFIG_FILE).read_text())
    assert meta["head"]["stored_codebooks"] == [3, 8]

    loaded = load_checkpoint(tmp_path / "model", get_registry()).model
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys() and "head.codebooks" in restored
    assert all(torch.equal(original[k], restored[k]) for k in original)
    prompts = [torch.randn(3, SPACE.dim)]
    rules = StopRules(max_new_concepts=4, repetition_threshold=None)
    assert torch.equal(generate(model, prompts, rules)[0].concepts,
                       generate(loaded, prompts, rules)[0].concepts)


def test_a_head_built_from_a_checkpoint_description_needs_its_weights(quantizer_dir):
    torch.manual_seed(0)
    model = model_of("toy", {}, {"name": "quant_d", "quantizer": "nowhere",
                                    "stored_codebooks": [3, 8]}, SPACE)
    with pytest.raises(RuntimeError, match="codebooks were never loaded"):
        model(torch.randn(1, 4, SPACE.dim))


# --------------------------------------------------------------------------- quantizer checks

@pytest.mark.parametrize("head", HEADS)
def test_missing_or_mismatched_quantizers_are_refused(head, tmp_path):
    with pytest.raises(InputFileError, match="quantizer directory not found"):
        model_with(head, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="not a quantizer directory"):
        model_with(head, tmp_path / "empty")
    other = fit_tiny_quantizer(tmp_path / "other", ConceptSpace("other_space", 6))
    with pytest.raises(ConceptSpaceMismatchError, match=r"other_space \(6-d\).*8-d"):
        model_with(head, other)
    right = fit_tiny_quantizer(tmp_path / "right", SPACE)
    with pytest.raises(UserError, match="num_codebooks=5: .* has 3 codebooks"):
        model_with(head, right, num_codebooks=5)


# --------------------------------------------------------------------------- recipes

@pytest.fixture(scope="module")
def wiki_like(tmp_path_factory) -> dict[str, str]:
    """Shards and a quantizer of the same space, standing in for runs/wiki/*."""
    root = tmp_path_factory.mktemp("wiki_like")
    shards = write_shards(root / "shards", walk_documents(30))
    quantizer = fit_tiny_quantizer(root / "quantizer", WALK_SPACE)
    return {"shards": str(shards), "quantizer": str(quantizer), "root": str(root)}


def validate_train_recipe(recipe: Path, shards: str, quantizer: str) -> list[str]:
    overrides = [f"data.shards={shards}", f"data.normalizer={shards}/normalizer.json",
                 f"head.quantizer={quantizer}"]
    return validate_recipe(load_recipe(recipe, overrides), get_registry()).problems


@pytest.mark.parametrize("name", ["train_quant_d_wiki.yaml", "train_quant_c_wiki.yaml"])
def test_shipped_quant_recipes_validate(name, wiki_like):
    recipe = REPO / "recipes" / name
    assert load_recipe(recipe).head.quantizer == "runs/wiki/quantizer"  # fit_quantizer_wiki's output
    assert validate_train_recipe(recipe, wiki_like["shards"], wiki_like["quantizer"]) == []


def test_a_quantizer_of_another_space_fails_recipe_validation(wiki_like, tmp_path):
    other = fit_tiny_quantizer(tmp_path / "q", ConceptSpace("not-the-walk", WALK_SPACE.dim))
    problems = validate_train_recipe(REPO / "recipes" / "train_quant_d_wiki.yaml",
                                     wiki_like["shards"], str(other))
    assert len(problems) == 1 and "concept spaces differ" in problems[0]
    assert "head.quantizer" in problems[0] and "not-the-walk" in problems[0]


@pytest.mark.parametrize("head", HEADS)
def test_train_task_trains_the_head_into_a_checkpoint_that_generates_alone(head, wiki_like,
                                                                           tmp_path):
    """The train recipe with only its head section changed (DeepSpeed, in this process)."""
    quantizer = shutil.copytree(wiki_like["quantizer"], tmp_path / "quantizer")
    recipe = train_recipe(Path(wiki_like["shards"]), tmp_path / "model", steps=8)
    recipe["head"] = {"name": head, "quantizer": str(quantizer)}
    resolved = resolve_recipe(write_yaml(tmp_path / "recipe.yaml", recipe), (), get_registry())
    with restored_process_state():
        run_resolved(resolved)
    shutil.rmtree(quantizer)
    loaded = load_checkpoint(tmp_path / "model", get_registry())
    assert torch.equal(loaded.model.head.codebooks,
                       ResidualQuantizer.load(wiki_like["quantizer"]).codebooks)
    prompt = torch.randn(3, WALK_SPACE.dim)
    rules = StopRules(max_new_concepts=3, repetition_threshold=None)
    continuation = generate(loaded.model, [prompt], rules, normalizer=loaded.normalizer)[0]
    assert continuation.concepts.shape == (3, WALK_SPACE.dim)
