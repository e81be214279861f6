"""The packaged Wikipedia leads in French and Spanish, the same article found across languages,
and cross-lingual retrieval of it (the real package files and the real encoder, a few leads)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lcm.errors import InputFileError
from lcm.plugins.corpora.wiki_offline import article_key, read_summaries
from lcm.registry import get_registry
from lcm.config import resolve_recipe
from tests._run import run_resolved
from tests._train_fixtures import write_yaml


def run(task: str, **options):
    """Resolve and run one task as ``lcm run`` does (its outputs claimed, components built)."""
    recipe = options["output"] + ".yaml"
    resolved = resolve_recipe(write_yaml(Path(recipe), {"task": task, **options}), (),
                              get_registry())
    return run_resolved(resolved)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_article_key_matches_titles_across_languages():
    assert article_key("Égypte") == article_key("Egypte") == "egypte"
    assert article_key("Abraham_Lincoln") == article_key("Abraham Lincoln") == "abraham lincoln"
    assert article_key("2001: A Space Odyssey") == "2001 a space odyssey"


def test_french_leads_aligned_with_english_and_held_out_of_training(tmp_path):
    held = tmp_path / "held_fr.jsonl"
    counts = run("wiki_corpus", language="fr", present_in=["en", "es"], every=50, limit=4,
                 output=str(held))
    french = rows(held)
    assert counts["written"] == 4 and len(french) == 4
    english = {article_key(t) for t in read_summaries("en")}
    spanish = {article_key(t) for t in read_summaries("es-es")}
    assert all(r["article"] in english and r["article"] in spanish for r in french)
    assert any(c.startswith("skipped: not in all of en, es") for c in counts)

    same_en = tmp_path / "held_en.jsonl"
    run("wiki_corpus", language="en", include=str(held), output=str(same_en))
    assert sorted(r["article"] for r in rows(same_en)) == sorted(r["article"] for r in french)
    assert rows(same_en)[0]["text"] != french[0]["text"]  # the English lead, not the French one

    train = tmp_path / "train_en.jsonl"
    counts = run("wiki_corpus", language="en", exclude=str(held), output=str(train))
    assert counts["skipped: in exclude"] == 4
    assert not {r["article"] for r in rows(train)} & {r["article"] for r in french}


def test_cross_lingual_retrieval_finds_the_same_article(tmp_path):
    french, english = tmp_path / "fr.jsonl", tmp_path / "en.jsonl"
    run("wiki_corpus", language="fr", present_in=["en"], every=400, output=str(french))
    run("wiki_corpus", language="en", include=str(french), output=str(english))
    report = run("crosslingual_retrieval", source=str(french), target=str(english),
                 output=str(tmp_path / "report.json"), examples=2,
                 encoder={"name": "e5_multilingual", "threads": 1})
    assert report["pairs"] == len(rows(french)) >= 5
    assert report["top1"] >= 0.8 and report["top1_centred"] >= 0.8, report
    assert json.loads((tmp_path / "report.json").read_text())["examples"][0]["query"]


def test_retrieval_refuses_rows_without_an_article(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "text": "hello"}\n')
    with pytest.raises(InputFileError, match="line 1: needs `article`"):
        run("crosslingual_retrieval", source=str(bad), target=str(bad),
            output=str(tmp_path / "r.json"))


def test_the_zero_shot_recipe_validates():
    from lcm.config import load_recipe, validate_recipe

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "zero_shot_multilingual.yaml"
    assert validate_recipe(load_recipe(recipe), get_registry()).problems == []
