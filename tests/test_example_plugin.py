"""The example third-party package: installed as a distribution, listed, and used from a recipe."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lcm-example-plugin"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """An environment in which the example package is installed (into a private target dir)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True)
    env = dict(os.environ, PYTHONPATH=f"{target}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               HF_HUB_OFFLINE="1")
    return env


LOAD_CHECKPOINT = """
import sys
from lcm.errors import UserError
from lcm.model.checkpoint import load_checkpoint
from lcm.registry import get_registry
try:
    load_checkpoint(sys.argv[1], get_registry())
except UserError as exc:
    print(exc)
"""


def lcm(env: dict[str, str], *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lcm.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


def test_the_installed_package_shows_in_plugins_list(plugin_env):
    out = lcm(plugin_env, "plugins", "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = {(c["kind"], c["name"]): c for c in json.loads(out.stdout)["components"]}
    for key in [("encoder", "bag_of_words"), ("decoder", "bow_keywords"), ("head", "residual_mse")]:
        assert rows[key]["distribution"] == "lcm-example-plugin", key
        assert rows[key]["version"] == "0.1.0"
    assert rows[("encoder", "bag_of_words")]["space"] == "bow-256"
    assert rows[("encoder", "minilm")]["distribution"] == "lcm"  # built-ins are still there


def test_a_recipe_uses_all_three_example_components(plugin_env, tmp_path):
    work = tmp_path / "run"
    recipe = tmp_path / "example.yaml"
    recipe.write_text(f"""
task: pipeline
vars: {{work: {work}}}
steps:
  - task: prepare
    input: {REPO / 'data' / 'sample_docs.txt'}
    output: ${{vars.work}}/shards
    encoder: {{name: bag_of_words, dim: 64}}
  - task: fit_normalizer
    shards: ${{vars.work}}/shards
    output: ${{vars.work}}/normalizer
  - task: train
    output: ${{vars.work}}/model
    data: {{shards: "${{vars.work}}/shards", normalizer: "${{vars.work}}/normalizer", batch_size: 4}}
    model: {{arch: toy}}
    head: {{name: residual_mse, delta_scale: 0.5}}
    train: {{steps: 6, warmup_steps: 2, checkpoint_every: 100, log_every: 2}}
  - task: generate
    model: ${{vars.work}}/model
    input: {REPO / 'data' / 'sample_docs.txt'}
    limit: 3
    output: ${{vars.work}}/continuations.jsonl
    encoder: {{name: bag_of_words, dim: 64}}
    decoder: {{name: bow_keywords, dim: 64}}
    prompt_concepts: 2
    max_new_concepts: 2
    stop: {{end_sentence: null}}
""")
    out = lcm(plugin_env, "run", str(recipe))
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in (work / "continuations.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    config = json.loads((work / "model" / "config.json").read_text())
    assert config["head"]["name"] == "residual_mse" and config["space"]["name"] == "bow-64"
    assert config["plugins"] == {"head:residual_mse": "lcm-example-plugin"}
    # the package uninstalled (this interpreter's own environment): the checkpoint names it
    gone = subprocess.run([sys.executable, "-c", LOAD_CHECKPOINT, str(work / "model")],
                          capture_output=True, text=True, cwd=REPO)
    assert gone.stdout.strip() == (f"{work / 'model'}: head 'residual_mse' is not installed: the "
                                   f"checkpoint was trained with plugin package "
                                   f"lcm-example-plugin (pip install it)"), gone.stderr[-2000:]
    # the keyword decoder only knows words it observed in the prompts: every output word is one
    for row in rows:
        prompt_words = set(" ".join(row["prompt"]).lower().replace(".", " ").replace(",", " ").split())
        generated = " ".join(row["generated"]).split()
        assert set(generated) <= prompt_words | {""}, row


def test_a_mismatched_space_is_refused_before_running(plugin_env, tmp_path):
    recipe = tmp_path / "mixed.yaml"
    recipe.write_text(f"""
task: generate
model: {tmp_path}
input: {REPO / 'data' / 'sample_docs.txt'}
encoder: {{name: bag_of_words, dim: 64}}
decoder: {{name: retrieval, bank: {tmp_path}, space: minilm, dim: 384}}
""")
    out = lcm(plugin_env, "run", str(recipe))
    assert out.returncode == 2
    assert "concept spaces differ" in out.stderr and "bow-64 (64-d)" in out.stderr
