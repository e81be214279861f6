"""The summary selector's salience prior: fitted by ``lcm run`` on pairs, saved as JSON, loaded
safely, and weighed against the concepts' cosines in ``selector.choose``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lcm.errors import InputFileError
from lcm.pipeline.salience import (
    FEATURES,
    SalienceModel,
    nearest_labels,
    oracle_labels,
    salience_features,
)
from lcm.pipeline.selector import RETRIEVED, choose
from lcm.pipeline.support import SourceSupport
from lcm.spaces import read_space
from tests._data_fixtures import REPO, run_lcm, write_recipe

SHIPPED = REPO / "models" / "salience_minilm"
PAPER = ["Figure 1: An example of the task.",
         "Named entities are usually recognised after a sentence is complete.",
         "In this paper, we propose a model that labels entities as they are typed.",
         "Earlier work (Smith et al., 2019) used whole sentences.",
         "Our results show that the model is accurate with left context only."]


def _pairs(tmp_path, count: int = 8):
    """Papers whose abstracts restate their "we propose" and "results show" sentences."""
    rows = []
    for i in range(count):
        topic = ["entities", "parsing", "translation", "tagging"][i % 4]
        text = [s.replace("entities", topic) for s in PAPER]
        rows.append({"id": f"p{i}", "title": f"Recognising {topic} as they are typed",
                     "text": " ".join(text), "summary": " ".join([text[2], text[4]])})
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return pairs


def test_fit_salience_learns_which_sentences_abstracts_take_and_saves_json(tmp_path):
    output = tmp_path / "salience"
    recipe = write_recipe(tmp_path / "fit.yaml", (
        f"task: fit_salience\ninput: {_pairs(tmp_path)}\noutput: {output}\n"
        "title_field: title\nencoder: {name: minilm, device: cpu}\n"))
    result = run_lcm("run", str(recipe))
    assert result.returncode == 0, result.stderr
    assert "fitted the salience prior on 8 pairs (40 segments; skipped: none)" in result.stdout
    assert read_space(output).name == "minilm"
    model = SalienceModel.load(output)
    assert model.features == FEATURES
    unit = torch.nn.functional.normalize(torch.randn(5, 384), dim=-1).numpy()
    scores = model.scores(salience_features(PAPER, unit))  # no title: its features count as mean
    assert abs(scores.mean()) < 1e-9 and abs(scores.std() - 1.0) < 1e-6
    # the "we propose" and "results show" sentences outrank the caption and the citation
    assert min(scores[2], scores[4]) > max(scores[0], scores[3]), scores


def test_pairs_without_a_summary_are_counted_and_none_left_is_one_line_exit_2(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "a", "text": " ".join(PAPER)}) + "\n"
                     + json.dumps({"id": "b", "text": " ".join(PAPER), "summary": 3}) + "\n")
    recipe = write_recipe(tmp_path / "fit.yaml", (
        f"task: fit_salience\ninput: {pairs}\noutput: {tmp_path / 'out'}\n"
        "encoder: {name: minilm, device: cpu}\n"))
    result = run_lcm("run", str(recipe))
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert error == [f"error: {pairs}: no pair to fit on (2 no summary text)"], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out" / "salience.json").exists()


def test_the_labels_are_the_sentences_a_summary_restates():
    assert oracle_labels(PAPER, [PAPER[2], PAPER[4]]).tolist() == [0, 0, 1, 0, 1]
    # a summary longer than its source takes each source sentence at most once
    assert oracle_labels(PAPER[:2], PAPER[:2] + PAPER[3:]).tolist() == [1, 1]
    vectors = np.eye(5, 8)
    assert nearest_labels(vectors, vectors[[4, 1]] + 0.1).tolist() == [0, 1, 0, 0, 1]


def test_a_salience_file_of_other_features_or_no_json_is_refused(tmp_path):
    saved = json.loads((SHIPPED / "salience.json").read_text())
    (tmp_path / "salience.json").write_text(json.dumps({**saved, "features": ["position"]}))
    with pytest.raises(InputFileError, match="refit it"):
        SalienceModel.load(tmp_path)
    (tmp_path / "salience.json").write_text("\x80 not json")
    with pytest.raises(InputFileError, match="not a salience model"):
        SalienceModel.load(tmp_path / "salience.json")


def test_the_prior_decides_between_segments_about_equally_close_to_a_concept():
    source = SourceSupport(["Background.", "We propose a method.", "Results."],
                           torch.tensor([[1.0, 0.0, 0.0], [0.98, 0.2, 0.0], [0.0, 0.0, 1.0]]),
                           0.5)
    concept = torch.tensor([[1.0, 0.0, 0.0]])
    pool = [("Background.", RETRIEVED)]
    vectors = torch.tensor([[1.0, 0.0, 0.0]])
    without, = choose(concept, [pool], vectors, source)
    assert without.decoded.text == "Background."
    prior = torch.tensor([-0.5, 0.5, 0.0])
    with_prior, = choose(concept, [pool], vectors, source, prior)
    assert with_prior.decoded.text == "We propose a method." and with_prior.segment == 1
    # the reported cosine stays the concept's own, not the ranked score
    assert with_prior.decoded.cosine == pytest.approx(float(torch.nn.functional.normalize(
        torch.tensor([0.98, 0.2, 0.0]), dim=0)[0]), abs=1e-6)
    # a far segment is not pulled in by a small prior
    far, = choose(concept, [pool], vectors, source, torch.tensor([0.0, 0.0, 0.3]))
    assert far.decoded.text == "Background."


def test_the_shipped_prior_loads_and_the_shipped_recipes_use_it():
    model = SalienceModel.load(SHIPPED)
    assert read_space(SHIPPED).name == "minilm"
    assert np.isfinite(model.coefficients).all()
    for recipe in ("text_summarize.yaml", "speech_summarize.yaml", "evaluate_summarizer.yaml"):
        dumped = run_lcm("run", str(REPO / "recipes" / recipe), "--dump-config")
        assert dumped.returncode == 0, dumped.stderr
        assert "salience: models/salience_minilm" in dumped.stdout, recipe
