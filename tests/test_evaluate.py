"""The ``evaluate`` task: generation metrics against extractive baselines, and pre-training
metrics of a checkpoint on held-out shards."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lcm.config import resolve_recipe
from lcm.errors import InputFileError, RecipeError, UserError
from lcm.evaluate import text_metrics
from lcm.evaluate.baselines import centroid_k, lead_k, random_k, textrank_k
from lcm.evaluate.generation import read_examples
from lcm.registry import get_registry
from lcm.model.heads import context_states
from tests._run import run_context

SENTENCES = ["One fish swam.", "Two birds flew.", "Three cats slept.", "Four dogs ran.", "Five owls hooted."]


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def split_on_periods(text: str) -> list[str]:
    return [s.strip() + "." for s in text.split(".") if s.strip()]


def run_recipe(tmp_path: Path, body: str, overrides: list[str] = ()):
    recipe = tmp_path / "evaluate.yaml"
    recipe.write_text(f"task: evaluate\noutput: {tmp_path / 'report.json'}\nprogress: false\n{body}")
    resolved = resolve_recipe(recipe, list(overrides), get_registry())
    report = resolved.task_cls().run(resolved.config, run_context())
    return report, json.loads((tmp_path / "report.json").read_text())


# ----------------------------------------------------------------------------- text metrics

def test_words_are_lowercased_alphanumeric_tokens():
    assert text_metrics.words("Hello, World! It's 3.2%") == ["hello", "world", "it", "s", "3", "2"]


def test_rouge_l_on_a_hand_computed_pair():
    # LCS of "the cat sat on the mat" / "the cat lay on the mat" is 5 of 6 words each way.
    assert text_metrics.rouge_l("the cat lay on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    assert text_metrics.rouge_l("The cats sat.", "the cat sat") == pytest.approx(1.0)  # stemmed
    assert text_metrics.rouge_l("", "the cat sat") == 0.0


def test_ovl3_is_the_share_of_output_trigrams_found_in_the_source():
    # output trigrams (a b c), (b c d); only (a b c) is in the source
    assert text_metrics.ngram_overlap(["a b c d"], ["x a b c y"]) == pytest.approx(0.5)
    assert text_metrics.ngram_overlap(["x a b c"], ["x a b c y"]) == 1.0
    assert text_metrics.ngram_overlap(["p q r"], ["x a b c y"]) == 0.0
    assert text_metrics.ngram_overlap(["a b"], ["a b c"]) == 0.0  # no trigram at all
    # trigrams never span sentences: reordered source sentences are still fully copied
    assert text_metrics.ngram_overlap(["d e f.", "a b c."], ["a b c.", "d e f."]) == 1.0
    assert text_metrics.ngram_overlap(["c d e"], ["a b c.", "d e f."]) == 0.0


def test_rep4_counts_repeated_fourgrams():
    # 9 words -> 6 four-grams, of which 3 are distinct
    assert text_metrics.ngram_repetition("go to bed go to bed go to bed") == pytest.approx(0.5)
    assert text_metrics.ngram_repetition("the quick brown fox jumps over the lazy dog") == 0.0
    assert text_metrics.ngram_repetition("too short") == 0.0
    assert text_metrics.ngram_repetition("rates went up. " * 5) > 0.5


# ----------------------------------------------------------------------------- baselines

def test_lead_k_takes_the_first_sentences():
    assert lead_k(SENTENCES, 2) == SENTENCES[:2]
    assert lead_k(SENTENCES, 9) == SENTENCES


def test_random_k_is_seeded_ordered_and_varies_with_the_seed():
    picks = random_k(SENTENCES, 3, seed=7, example_index=4)
    assert picks == random_k(SENTENCES, 3, seed=7, example_index=4)
    assert len(set(picks)) == 3 and picks == sorted(picks, key=SENTENCES.index)
    draws = {tuple(random_k(SENTENCES, 2, seed=s, example_index=0)) for s in range(20)}
    assert len(draws) > 3  # 10 possible pairs; a fixed choice would give 1
    assert random_k(SENTENCES, 9, seed=0, example_index=0) == SENTENCES


def test_centroid_and_textrank_pick_the_sentences_of_the_main_topic():
    # three sentences share a direction (the topic), two are off on their own
    topic = np.array([1.0, 0.0, 0.0])
    vectors = np.array([[0.0, 1.0, 0.0], topic + [0, 0.1, 0], [0.0, 0.0, 1.0],
                        topic + [0, 0, 0.1], topic])
    assert centroid_k(vectors, 2) == [1, 3]  # nearer the mean than the pure topic vector
    assert set(centroid_k(vectors, 3)) == {1, 3, 4}
    assert set(textrank_k(vectors, 3)) == {1, 3, 4}
    assert textrank_k(vectors, 3) == sorted(textrank_k(vectors, 3))  # source order
    assert textrank_k(np.eye(3), 2) == [0, 1]  # no edges: ties keep source order
    assert centroid_k(vectors, 9) == [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------- generation report

def test_generation_report_scores_model_and_baselines(tmp_path):
    source = " ".join(SENTENCES)
    data = write_jsonl(tmp_path / "pred.jsonl", [
        {"source": source, "reference": "Two birds flew.", "prediction": "Two birds flew."},
        {"source": SENTENCES, "reference": ["One fish swam.", "Four dogs ran."],
         "prediction": "dogs ran dogs ran dogs ran dogs ran"},
    ])
    report, written = run_recipe(tmp_path, f"generation: {{input: {data}, seed: 3}}")
    assert list(report.rows) == ["model", "lead-k", "random-k"]
    # first: identical to the reference; second: "dogs ran" shares 2 of 4 reference words
    model_rouge = (1.0 + text_metrics.rouge_l("dogs ran dogs ran dogs ran dogs ran",
                                              "One fish swam. Four dogs ran.")) / 2
    assert report.cell("model", "rouge_l").mean == pytest.approx(model_rouge)
    assert report.cell("model", "rep_4").mean > 0
    # lead-k takes as many sentences as the reference: 1 sentence (no shared word), then 2
    # sentences sharing "one fish swam" (3 of 6 words each way)
    assert report.cell("lead-k", "rouge_l").mean == pytest.approx((0.0 + 0.5) / 2)
    for baseline in ("lead-k", "random-k"):  # extractive: every trigram is copied
        assert report.cell(baseline, "ovl_3").mean == 1.0
    assert {report.cell(s, m).n for s in report.rows for m in ("rouge_l", "ovl_3", "rep_4")} == {2}
    assert written["rows"][0]["system"] == "model"
    assert written["rows"][0]["metrics"]["rouge_l"]["mean"] == pytest.approx(model_rouge)
    assert written["settings"]["random_seed"] == 3
    again, _ = run_recipe(tmp_path, f"generation: {{input: {data}, seed: 3}}")
    assert again.to_dict()["rows"] == report.to_dict()["rows"]


def test_an_encoder_adds_the_centroid_textrank_and_oracle_rows_and_grounding(tmp_path):
    data = write_jsonl(tmp_path / "refs.jsonl", [{"source": SENTENCES, "reference": "Five owls hooted."}])
    report, _ = run_recipe(tmp_path, f"generation: {{input: {data}, k: 2, encoder: {{name: minilm}}}}")
    assert list(report.rows) == ["lead-2", "random-2", "centroid-2", "textrank-2", "oracle"]
    assert report.cell("centroid-2", "ovl_3").mean == 1.0  # extractive
    # the oracle is the reference's nearest source sentence, which it then covers in full
    assert report.cell("oracle", "sentences").mean == 1.0
    assert report.cell("oracle", "coverage").mean == 1.0
    assert report.cell("lead-2", "unsupported").mean == 0.0  # a source sentence is supported


def test_grounding_counts_an_invented_sentence_as_unsupported(tmp_path):
    invented = "Seven hundred owls flew over Berlin in 1999."
    data = write_jsonl(tmp_path / "refs.jsonl", [{"source": SENTENCES, "reference": "Five owls hooted.",
                                                  "prediction": [SENTENCES[0], invented]}])
    report, _ = run_recipe(tmp_path, f"generation: {{input: {data}, k: 2, encoder: {{name: minilm}}}}")
    assert report.cell("model", "unsupported").mean == 0.5
    assert report.cell("model", "sentences").mean == 2.0


def test_sources_and_references_alone_score_the_baselines_with_a_fixed_k(tmp_path):
    data = write_jsonl(tmp_path / "refs.jsonl", [{"source": SENTENCES, "reference": "Five owls hooted."}])
    report, written = run_recipe(tmp_path, f"generation: {{input: {data}, k: 1}}")
    assert list(report.rows) == ["lead-1", "random-1"]
    assert report.cell("lead-1", "rouge_l").mean == pytest.approx(
        text_metrics.rouge_l("One fish swam.", "Five owls hooted."))
    assert written["settings"]["baseline_k"] == 1


def test_text_fields_are_split_into_sentences(tmp_path):
    data = write_jsonl(tmp_path / "a.jsonl", [{"source": "A b c. D e f. G h i.", "reference": "X. Y."}])
    (example,) = read_examples(data, split_on_periods)
    assert example.source == ["A b c.", "D e f.", "G h i."] and example.reference == ["X.", "Y."]


@pytest.mark.parametrize("records, message", [
    ([{"source": SENTENCES, "reference": "r"}, {"source": SENTENCES}], "a.jsonl:2: missing field 'reference'"),
    (["{not json"], "a.jsonl:1: malformed JSON"),
    ([{"source": 3, "reference": "r"}], "a.jsonl:1: field 'source' must be a text or a list"),
    ([{"source": [], "reference": "r"}], "a.jsonl:1: field 'source' is empty"),
    ([{"source": SENTENCES, "reference": "r", "prediction": "p"}, {"source": SENTENCES, "reference": "r"}],
     "a.jsonl:2: missing field 'prediction', which 1 other example(s) have"),
    (["[1, 2]"], "a.jsonl:1: expected a JSON object"),
])
def test_bad_lines_are_errors_naming_file_and_line(tmp_path, records, message):
    data = write_jsonl(tmp_path / "a.jsonl", records)
    with pytest.raises(InputFileError) as err:
        read_examples(data, split_on_periods)
    assert message in str(err.value)


def test_an_empty_file_is_a_clear_user_error(tmp_path):
    data = tmp_path / "empty.jsonl"
    data.write_text("\n\n")
    with pytest.raises(UserError, match="holds no examples"):
        read_examples(data, split_on_periods)


def test_generation_mode_without_input_is_refused_at_validation(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: evaluate\nmode: generation\n")
    with pytest.raises(RecipeError, match=r"generation.input: required when mode is 'generation'"):
        resolve_recipe(recipe, (), get_registry())


def test_cli_reports_a_bad_line_in_one_line_with_exit_code_2(tmp_path):
    data = write_jsonl(tmp_path / "a.jsonl", [{"source": SENTENCES}])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"task: evaluate\ngeneration: {{input: {data}}}\noutput: {tmp_path / 'o.json'}\n")
    out = subprocess.run([sys.executable, "-m", "lcm.cli", "run", str(recipe)], capture_output=True,
                         text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {data}:1: missing field 'reference' (fields: source)"


# ----------------------------------------------------------------------------- concept metrics

def test_l2_and_contrastive_accuracy_on_hand_computed_points():
    import torch

    from lcm.evaluate.concept_metrics import contrastive_accuracy, l2_distances

    assert l2_distances(torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2)).tolist() == [5.0]
    targets = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    predicted = torch.tensor([[0.5, 0.0], [3.0, 0.0], [0.0, 0.0]])
    sequence = torch.tensor([0, 0, 1])
    # row 0: true at 0.5, its one distractor (row 2's target) at 2.5 -> 1.0
    # row 1: true at 2.0, distractor at 0.0 -> 0.0; row 2: true at 3, distractors at 0 and 1 -> 0.0
    assert contrastive_accuracy(predicted, targets, sequence).tolist() == [1.0, 0.0, 0.0]
    assert contrastive_accuracy(predicted, targets, torch.zeros(3, dtype=torch.long)).isnan().all()


def test_paraphrase_score_is_the_best_cosine_to_the_visible_context():
    import math

    import torch

    from lcm.evaluate.concept_metrics import paraphrase_scores

    concepts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    predicted = torch.tensor([[2.0, 0.0],    # predicts position 1, sees x0 only: cos 1
                              [1.0, -1.0]])  # predicts position 2, sees x0 (cos .707), x1 (-.707)
    scores = paraphrase_scores(predicted, concepts).tolist()
    assert scores == pytest.approx([1.0, 1 / math.sqrt(2)])


# ----------------------------------------------------------------------------- pre-training

def test_teacher_forcing_through_the_head_protocol_matches_a_full_forward_pass():
    import torch

    from lcm.evaluate.pretraining import teacher_forced
    from tests._model_fixtures import random_concepts, toy_model

    model = toy_model(seed=1)
    concepts = random_concepts(3, 6)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False  # a shorter document, right-padded
    stepped = teacher_forced(model, concepts, mask, 0)
    with torch.no_grad():
        full = model.head.postnet(context_states(model.backbone, concepts, mask)[:, :-1])  # (B, T-1, D)
    valid = mask[:, 1:]
    assert torch.allclose(stepped[valid], full[valid], atol=1e-5)


def _positions(documents):
    """(previous, true next) concept pairs of every document, float32."""
    import numpy as np

    pairs = [(d.vectors[t - 1], d.vectors[t]) for d in documents for t in range(1, len(d.vectors))]
    previous, target = (np.stack(x).astype(np.float32) for x in zip(*pairs))
    return previous, target


def test_pretraining_report_with_round_trip_and_mi(tmp_path):
    import numpy as np

    from lcm.evaluate.mutual_information import ContextMutualInformation
    from lcm.evaluate.pretraining import (MEAN_CONCEPT, PREVIOUS_CONCEPT, TOO_SHORT, PretrainingOptions,
                                          evaluate_pretraining)
    from lcm.model.checkpoint import load_checkpoint
    from lcm.plugins.decoders.retrieval import RetrievalConfig, RetrievalDecoder
    from tests._evaluate_fixtures import LookupEncoder, held_out, tiny_causal_lm

    data = held_out(tmp_path)
    loaded = load_checkpoint(data.checkpoint, get_registry())
    sentences = [s for d in data.documents for s in d.sentences]
    lm = ContextMutualInformation(tiny_causal_lm(tmp_path / "lm", sentences))
    report = evaluate_pretraining(
        loaded, str(data.shards), PretrainingOptions(max_concepts=3, max_decoded=5),
        encoder=LookupEncoder(data.documents), decoder=RetrievalDecoder(RetrievalConfig(bank=str(data.shards))),
        mi_scorer=lm, progress=False)

    model = "model (mse)"
    assert list(report.rows) == [model, MEAN_CONCEPT, PREVIOUS_CONCEPT]
    positions = sum(len(d.sentences) - 1 for d in data.documents)  # windows of 3 overlap by one
    assert {report.cell(s, m).n for s in report.rows for m in ("l2", "ca", "par")} == {positions}
    assert report.settings["skipped"] == {TOO_SHORT: 1} and report.settings["documents"] == 5

    previous, target = _positions(data.documents)
    center = loaded.normalizer.center
    assert report.cell(PREVIOUS_CONCEPT, "l2").mean == pytest.approx(
        np.linalg.norm(target - previous, axis=1).mean(), rel=1e-5)
    assert report.cell(MEAN_CONCEPT, "l2").mean == pytest.approx(
        np.linalg.norm(target - center, axis=1).mean(), rel=1e-5)
    assert report.cell(PREVIOUS_CONCEPT, "par").mean == pytest.approx(1.0)  # it copies the context
    # a copied context concept decodes to its own sentence and re-encodes to itself
    assert report.cell(PREVIOUS_CONCEPT, "round_trip_l2").mean == pytest.approx(0.0, abs=1e-6)
    assert report.cell(PREVIOUS_CONCEPT, "round_trip_l2").n == 5
    # the model's round trip lands on the bank vector nearest (cosine) to its prediction
    model_cell = report.cell(model, "round_trip_l2")
    assert model_cell.n == 5 and model_cell.mean > 0.01
    for system in report.rows:
        mi = report.cell(system, "mi")
        assert mi.n == 5 and np.isfinite(mi.mean)
    assert 0.0 <= report.cell(model, "ca").mean <= 1.0


def test_mutual_information_matches_the_language_models_own_loss(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lcm.evaluate.mutual_information import ContextMutualInformation
    from tests._evaluate_fixtures import tiny_causal_lm

    texts = ["The sun rose early.", "Birds sang in the trees.", "The day was warm."]
    path = tiny_causal_lm(tmp_path / "lm", texts * 5)
    scorer = ContextMutualInformation(path)
    (mi,) = scorer.score([texts[:2]], [texts[2]])

    tokenizer, lm = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    suffix = tokenizer("\n" + texts[2] + "\n", add_special_tokens=False)["input_ids"]
    prefix = tokenizer(" ".join(texts[:2]), add_special_tokens=False)["input_ids"]

    def mean_loss(ids, scored_from):  # transformers shifts labels itself; -100 is not scored
        labels = [-100] * scored_from + ids[scored_from:]
        with torch.no_grad():
            return float(lm(torch.tensor([ids]), labels=torch.tensor([labels])).loss)

    expected = mean_loss(suffix, 1) - mean_loss(prefix + suffix, len(prefix) + 1)
    assert mi == pytest.approx(expected, abs=1e-4)


def run_pretraining_recipe(tmp_path, data, extra: str = ""):
    return run_recipe(tmp_path, "mode: pretraining\npretraining:\n"
                                f"  checkpoint: {data.checkpoint}\n  shards: {data.shards}\n{extra}")


def test_pretraining_task_writes_the_table_and_json(tmp_path):
    from tests._evaluate_fixtures import held_out

    data = held_out(tmp_path)
    report, written = run_pretraining_recipe(tmp_path, data, "  batch_size: 1\n")
    assert [row["system"] for row in written["rows"]] == ["model (mse)", "mean concept", "previous concept"]
    ca = written["rows"][0]["metrics"]["ca"]
    assert ca == {"mean": None, "n": 0}  # one sequence per batch: no distractors...
    assert written["settings"]["undefined"]["model (mse)"] == {"ca": 15}  # ...and said so
    assert written["rows"][0]["metrics"]["round_trip_l2"]["n"] == 0  # no decoder given
    assert written["rows"][0]["metrics"]["l2"]["n"] == 15


def test_pretraining_recipes_are_checked_before_running(tmp_path):
    from tests._evaluate_fixtures import held_out, write_shards

    data = held_out(tmp_path)
    with pytest.raises(RecipeError, match="mi_language_model: MI also needs a decoder"):
        run_pretraining_recipe(tmp_path, data, f"  mi_language_model: {tmp_path}\n")
    with pytest.raises(RecipeError, match="pretraining.shards: required"):
        run_recipe(tmp_path, f"mode: pretraining\npretraining: {{checkpoint: {data.checkpoint}}}\n")
    other = tmp_path / "other"
    write_shards(other)
    (other / "concept_space.json").write_text('{"name": "other_space", "dim": 8}')
    with pytest.raises(RecipeError, match="concept spaces differ"):
        run_recipe(tmp_path, f"mode: pretraining\npretraining: {{checkpoint: {data.checkpoint}, "
                             f"shards: {other}}}\n")


def test_in_document_contrastive_accuracy_on_points_of_a_line():
    """Concepts x_k = k on a line; prediction t (of x_{t+1}) is scored against the other
    concepts of the sequence: a copy of x_t has its target at 1 and a distractor (x_t) at 0."""
    import torch

    from lcm.evaluate.concept_metrics import in_document_accuracy

    concepts = torch.arange(4.0)[:, None] * torch.tensor([[1.0, 0.0]])  # (4, 2)
    copies = concepts[:-1]
    # t=0: distractors x0, x2, x3 at 0, 2, 3 -> 2/3; t=1: x0, x1, x3 at 1, 0, 2 -> 1/3 (a tie is
    # not farther); t=2: x0, x1, x2 at 2, 1, 0 -> 1/3
    assert in_document_accuracy(copies, concepts).tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    assert in_document_accuracy(concepts[1:], concepts).tolist() == [1.0, 1.0, 1.0]  # exact


def test_diversity_is_the_mean_pairwise_cosine_of_the_draws():
    import torch

    from lcm.evaluate.concept_metrics import draw_diversity

    same = torch.tensor([[[1.0, 1.0]], [[2.0, 2.0]], [[3.0, 3.0]]])  # (K=3, N=1, D=2)
    assert draw_diversity(same).tolist() == pytest.approx([1.0])
    spread = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[-1.0, 0.0]]])  # cosines 0, -1, 0
    assert draw_diversity(spread).tolist() == pytest.approx([-1 / 3])


def _line_shards(directory: Path, lengths: tuple[int, ...]) -> None:
    """Documents whose concepts lie on a line, 0.5 + k along the first axis (exact in fp16)."""
    from lcm.data.shards import Document, ShardWriter
    from tests._model_fixtures import TOY_SPACE

    with ShardWriter(directory, TOY_SPACE, encoder="test", docs_per_shard=2) as writer:
        for doc, length in enumerate(lengths):
            vectors = np.zeros((length, TOY_SPACE.dim), dtype=np.float16)
            vectors[:, 0] = 0.5 + np.arange(length)
            writer.write(Document(f"doc{doc}", [f"Sentence {doc}.{k}." for k in range(length)],
                                  vectors))


def test_copying_the_previous_concept_scores_the_expected_in_document_ca(tmp_path):
    """A document of L concepts on a line: the copy of x_t beats the distractors j with
    |j - t| > 1 only, max(t-1, 0) + max(L-t-2, 0) of L-1. A deterministic head (mse) and the
    baselines draw the same prediction every time: diversity 1."""
    from lcm.evaluate.pretraining import PREVIOUS_CONCEPT, PretrainingOptions, evaluate_pretraining
    from lcm.model.checkpoint import load_checkpoint, save_checkpoint
    from tests._model_fixtures import toy_model, toy_normalizer

    lengths = (4, 2, 6)
    _line_shards(tmp_path / "shards", lengths)
    checkpoint = save_checkpoint(tmp_path / "ckpt", toy_model(seed=3), toy_normalizer())
    report = evaluate_pretraining(load_checkpoint(checkpoint, get_registry()),
                                  str(tmp_path / "shards"),
                                  PretrainingOptions(max_concepts=8, diversity_draws=3),
                                  progress=False)
    expected = [(max(t - 1, 0) + max(L - t - 2, 0)) / (L - 1) for L in lengths for t in range(L - 1)]
    cell = report.cell(PREVIOUS_CONCEPT, "ca_doc")
    assert cell.n == len(expected) and cell.mean == pytest.approx(np.mean(expected))
    for system in report.rows:
        assert report.cell(system, "diversity").mean == pytest.approx(1.0)
        assert report.cell(system, "diversity").n == len(expected)
    assert report.settings["diversity_draws"] == 3
