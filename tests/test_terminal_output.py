"""What a person reads: summarize, generate and train through the CLI with their output captured
(not a terminal, as in CI or ``nohup``): no ``\\r`` frames, no third-party chatter, each bar's
closing count equal to the summary's, results printed once; ``--json`` and ``--quiet``; and the
errors a user meets first (YAML line and column, a plugin that failed to load)."""
from __future__ import annotations

import importlib.metadata as md
import json
import re
from pathlib import Path

from lcm.cli import main
from lcm.registry import build_registry
from tests._data_fixtures import REPO, run_lcm, write_recipe
from tests._train_fixtures import run_lcm as run_training
from tests._train_fixtures import train_recipe, walk_documents, write_shards, write_yaml

SUMMARIZER = REPO / "models" / "summarizer"
PAPER = ["Machine translation of low-resource languages remains difficult.",
         "Parallel data for most language pairs is scarce.",
         "In this paper, we propose a method that learns from monolingual text alone.",
         "Our approach combines back-translation with a denoising objective.",
         "Experiments on four language pairs show gains of up to 3 BLEU points.",
         "We release our code and models."]


def assert_clean(result) -> None:
    """Exit 0, and nothing a log file should not hold: no frames, no gloo, no traceback."""
    assert result.returncode == 0, result.stderr[-3000:]
    captured = result.stdout + result.stderr
    assert "\r" not in captured
    assert "[Gloo]" not in captured and "Traceback" not in captured


def bar_count(stderr: str, description: str, unit: str) -> int:
    """The count on a bar's closing line (``description: N unit ... in X s``), which must be
    its only closing line."""
    found = re.findall(rf"^{re.escape(description)}: ([\d,]+) {unit}\b.* in [\d.]+ s", stderr,
                       flags=re.MULTILINE)
    assert len(found) == 1, stderr
    return int(found[0].replace(",", ""))


def summarize_recipe(tmp_path: Path) -> Path:
    text = tmp_path / "paper.txt"
    text.write_text(" ".join(PAPER))
    return write_recipe(tmp_path / "summarize.yaml", (
        f"task: summarize\nmodel: {SUMMARIZER}\ninput: {text}\nas_single_document: true\n"
        f"output: {tmp_path / 'summary.json'}\nencoder: {{name: minilm, device: cpu}}\n"
        "decoder: {name: retrieval, space: minilm, dim: 384, distinct: true}\norder: source\n"
        "max_summary_concepts: 3\nstop: {end_sentence: null, repetition_threshold: null}\n"))


def test_summarize_prints_its_results_once_after_the_progress(tmp_path):
    recipe = summarize_recipe(tmp_path)
    result = run_lcm("run", str(recipe))
    assert_clean(result)
    read = bar_count(result.stderr, "summarise", "sentences")
    summary = re.search(r"summarised 1 document\(s\) of (\d+) segment\(s\) into (\d+) sentence",
                        result.stdout)
    assert summary and int(summary.group(1)) == read == len(PAPER)
    assert result.stdout.count("Summary") == 1 and result.stdout.count("paper (6 text") == 1
    for sentence in PAPER:
        assert result.stdout.count(sentence) >= 1
    assert result.stdout.count("cosine to the nearest source segment") == 1  # the legend
    written = json.loads((tmp_path / "summary.json").read_text())["documents"][0]["summary"]
    assert len(re.findall(r"[█·]{8} \d\.\d\d (near copy|close|related|loose)", result.stdout)) \
        == int(summary.group(2)) == len(written)


def test_generate_over_forty_documents_shows_a_few_and_says_where_the_rest_are(tmp_path):
    docs = tmp_path / "docs.txt"
    docs.write_text("".join(f"Story {i} begins here. The cat {i} sat down. It purred.\n"
                            for i in range(44)) + "   \n")
    output = tmp_path / "continuations.jsonl"
    recipe = write_recipe(tmp_path / "generate.yaml", (
        f"task: generate\nmodel: {SUMMARIZER}\ninput: {docs}\noutput: {output}\n"
        "encoder: {name: minilm, device: cpu}\n"
        "decoder: {name: retrieval, space: minilm, dim: 384}\nmax_new_concepts: 2\n"
        "batch_size: 16\n"))
    result = run_lcm("run", str(recipe))
    assert_clean(result)
    assert bar_count(result.stderr, "generate", "documents") == 45
    assert "continued 44 of 45 documents" in result.stdout and "1 empty document" in result.stdout
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 44
    shown = re.findall(r"^── (\S+) ──$", result.stdout, flags=re.MULTILINE)
    assert shown == [row["id"] for row in rows[:5]]  # the first few, each once
    assert f"… 39 more continuations not shown; all 44 are in {output}" in result.stdout


def test_train_sends_gloo_to_the_log_and_a_resumed_run_reports_its_own_steps(tmp_path):
    shards = write_shards(tmp_path / "shards", walk_documents(40))
    recipe = train_recipe(shards, tmp_path / "model", steps=4, checkpoint_every=2)
    path = write_yaml(tmp_path / "train.yaml", recipe)
    log = tmp_path / "run.log"
    first = run_training(path, "--log-file", str(log), OMP_NUM_THREADS="1")
    assert_clean(first)
    assert "[Gloo]" in log.read_text()  # said by C++ on fd 1/2, caught into the log
    assert bar_count(first.stderr, "train", "steps") == 4
    assert re.search(r"^trained 4 steps in [\d.]+ s: loss", first.stdout, flags=re.MULTILINE)
    assert first.stdout.count("trained ") == 1

    resumed = run_training(path, "train.steps=6", "train.resume=true", OMP_NUM_THREADS="1")
    assert_clean(resumed)
    assert bar_count(resumed.stderr, "train", "steps") == 2
    assert "trained 2 steps (steps 5-6, resumed at step 4) in" in resumed.stdout


def test_quiet_prints_the_summary_line_alone_and_json_one_object(tmp_path):
    shards = write_shards(tmp_path / "shards", walk_documents(10))
    recipe = write_recipe(tmp_path / "fit.yaml", f"task: fit_normalizer\nshards: {shards}\n"
                                                 f"output: {tmp_path / 'normalizer'}\n")
    quiet = run_lcm("run", str(recipe), "--quiet")
    assert_clean(quiet)
    [line] = quiet.stdout.splitlines()
    assert line.startswith("fitted the robust normaliser on ") and quiet.stderr == ""

    machine = run_lcm("run", str(recipe), "--json", "overwrite=true")
    assert_clean(machine)
    record = json.loads(machine.stdout)  # stdout holds the one JSON object and nothing else
    assert record["task"] == "fit_normalizer" and record["vectors"] > 0
    assert record["notes"] == {} and machine.stderr == ""


def test_a_yaml_error_names_file_line_and_column(tmp_path):
    recipe = write_recipe(tmp_path / "bad.yaml", "task: prepare\nencoder:\n  name: minilm\n"
                                                 "  device: [cpu\nbatch_size: 8\n")
    result = run_lcm("run", str(recipe))
    assert result.returncode == 2
    assert re.fullmatch(rf"error: {re.escape(str(recipe))}:5:11: not valid YAML: [^\n]+\n",
                        result.stderr), result.stderr


def test_a_field_problem_names_the_line_and_column_of_its_key(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "fields.yaml", (
        f"task: prepare\ninput: {REPO / 'data' / 'sample_docs.txt'}\noutput: {tmp_path / 'out'}\n"
        "encoder:\n  name: minilm\n  batch_sise: 4\ndocs_per_shard: many\n"))
    assert main(["run", str(recipe)]) == 2
    error = capsys.readouterr().err
    assert f"{recipe}:6:3: encoder.batch_sise: unknown field" in error
    assert "; 7:1: docs_per_shard: Value 'many'" in error  # the file named once, first
    assert main(["run", str(recipe), "docs_per_shard=x"]) == 2
    assert "; docs_per_shard: Value 'x'" in capsys.readouterr().err  # the file did not say it


def test_an_unknown_name_mentions_the_plugin_that_failed_to_load(tmp_path, capsys):
    broken = md.EntryPoint(name="fancy", value="lcm_fancy_encoders.plugin", group="lcm")
    registry = build_registry([*md.entry_points(group="lcm"), broken])
    recipe = write_recipe(tmp_path / "prepare.yaml", (
        f"task: prepare\ninput: {REPO / 'data' / 'sample_docs.txt'}\n"
        f"output: {tmp_path / 'shards'}\nencoder: {{name: fancy}}\n"))
    assert main(["run", str(recipe)], registry) == 2
    error = capsys.readouterr().err
    assert "unknown encoder 'fancy'" in error
    assert ("(plugin package lcm_fancy_encoders failed to load: ModuleNotFoundError: No module "
            "named 'lcm_fancy_encoders')") in error


def test_malformed_json_is_reported_in_plain_words(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "fine"}\n{"text": "never closed}\n')
    recipe = write_recipe(tmp_path / "prepare.yaml", (
        f"task: prepare\ninput: {docs}\noutput: {tmp_path / 'shards'}\n"
        "encoder: {name: minilm, device: cpu}\n"))
    result = run_lcm("run", str(recipe))
    assert result.returncode == 2
    assert f"{docs}:2: malformed JSON: Unterminated string starting at column 10" in result.stderr
    assert "at at" not in result.stderr
