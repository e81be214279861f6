"""``lcm plan``: the meta-device trace, DeepSpeed's memory estimators, and the paper's runs."""
from __future__ import annotations

import json

import pytest
import torch

from lcm.cli import main
from lcm.interfaces import ConceptSpace
from lcm.plan.estimate import Cluster, make_plan
from lcm.plan.recipe import load_train_recipe
from lcm.plan.trace import trace_training_forward
from lcm.registry import get_registry
from tests._model_fixtures import model_of

RECIPE = "recipes/pretrain_two_tower_sonar.yaml"
SPACE = ConceptSpace("plan", 16)
A100 = Cluster(gpus_per_node=8, nodes=1, gpu_memory=80 * 2 ** 30, peak_flops=312e12, mfu=0.4)


def traced(device: str, head: str, batch: int = 2):
    torch.manual_seed(0)
    with torch.device(device):
        model = model_of("toy", {}, {"name": head}, SPACE)
    return trace_training_forward(model, batch, 8, dtype=torch.float32)


@pytest.mark.parametrize("head", ["mse", "two_tower", "one_tower"])
def test_the_meta_trace_saves_what_a_real_forward_saves(head):
    """Values read from meta tensors as 0 must not change what runs: the activation bytes of a
    traced forward equal those of the same forward on the CPU, and scale with the batch
    (but for a few scalars)."""
    meta, cpu = traced("meta", head), traced("cpu", head)
    assert meta.activation_bytes == cpu.activation_bytes > 0
    assert traced("meta", head, batch=4).activation_bytes == pytest.approx(2 * meta.activation_bytes, rel=1e-3)
    if head == "mse":  # no masked attention: the counted FLOPs agree exactly too
        assert meta.forward_flops == cpu.forward_flops > 0


def paper_plan(nodes: int, concepts: float, *overrides: str):
    recipe = load_train_recipe(RECIPE, overrides, get_registry())
    cluster = Cluster(8, nodes, A100.gpu_memory, A100.peak_flops, A100.mfu)
    return make_plan(recipe, 1024, cluster, concepts)


PAPER_RUNS = {
    # name: (overrides, nodes of 8 A100-80GB, concepts trained on, the paper's steps and
    #        parameters): 1.6B: 250k steps of 229k concepts on 32 GPUs (windows of 128);
    #        7B: 124k steps on 256 GPUs, 142B concepts (2.7T tokens), windows of 2048.
    "two_tower_1_6b": (("vars.arch=two_tower_1_6b", "vars.window=128", "vars.batch_size=56"),
                       4, 250_000 * 229_376, 250_000, 1_635_101_696),
    "two_tower_7b": ((), 32, 142e9, 124_000, 6_930_781_696),
}


@pytest.mark.parametrize("name", sorted(PAPER_RUNS))
def test_the_plan_of_the_papers_runs(name):
    """Tolerances: parameters 1% (the reference's count); steps 10% (the 7B's batch is not a
    whole number of 2048-concept windows per GPU); the paper's per-GPU batch fits an 80 GB
    A100 under the recipe's ZeRO stage; total FLOPs within 15% of 6 x parameters x concepts
    (the traced count adds attention). The paper gives no wall-clock time to check days against."""
    overrides, nodes, concepts, steps, parameters = PAPER_RUNS[name]
    plan = paper_plan(nodes, concepts, *overrides)
    assert abs(plan.parameters - parameters) / parameters < 0.01
    assert abs(plan.steps - steps) / steps < 0.10
    assert plan.stages[plan.zero_stage].fits
    flops = plan.steps * plan.gpus * plan.micro_batch * plan.train_flops_per_window
    assert 1.0 <= flops / (6 * plan.parameters * plan.concepts) < 1.15
    assert plan.days == pytest.approx(flops / plan.gpus / (312e12 * 0.4) / 86400)


def test_zero_stages_shard_the_7b_model_states():
    """20 bytes per parameter (weights, gradients, fp32 Adam state) do not fit a GPU unsharded;
    each ZeRO stage shards more of them."""
    plan = paper_plan(32, 142e9)
    states = [s.model_states for s in plan.stages]
    assert states == sorted(states, reverse=True)
    assert states[0] == 20 * plan.parameters and not plan.stages[0].fits
    assert plan.stages[3].max_micro_batch > plan.stages[2].max_micro_batch > 0


def test_lcm_plan_prints_json_and_a_table(capsys):
    assert main(["plan", RECIPE, "vars.arch=toy", "--gpus", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["arch"] == "toy" and result["gpus"] == 2 and len(result["stages"]) == 4
    assert main(["plan", RECIPE, "vars.arch=toy", "--gpus", "2", "--gpu-memory", "40GiB"]) == 0
    assert "largest micro-batch" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--gpus", "2", "--gpu-memory", "lots"], "--gpu-memory 'lots' is not a size"),
    (["--gpus", "2", "vars.arch=huge"], "unknown architecture 'huge'"),
])
def test_lcm_plan_refuses_bad_input_in_one_line(capsys, args, message):
    assert main(["plan", RECIPE, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_lcm_plan_needs_a_train_recipe(capsys):
    assert main(["plan", "recipes/prepare_wiki.yaml", "--gpus", "1"]) == 2
    assert "needs a train recipe" in capsys.readouterr().err
