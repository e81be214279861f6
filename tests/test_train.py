"""The train task at toy size, through DeepSpeed on this CPU: ZeRO stages 0-3, bf16 with
gradient accumulation, resume after a SIGKILL (same losses as an uninterrupted run), the data
order it relies on, and the refusals of bad input."""
from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lcm.config import resolve_recipe
from lcm.data.normalizer import RobustScaler
from lcm.data.shards import Manifest, ShardWriter, iter_documents
from lcm.errors import DataIntegrityError, RecipeError
from lcm.interfaces import ConceptSpace
from lcm.model.checkpoint import load_checkpoint
from lcm.outputs import lock_path
from lcm.train.checkpointing import CHECKPOINTS, find_latest
from lcm.train.data import BatchStream, DataPosition, wrap_document
from lcm.train.log import read_log
from lcm.train.schedule import warmup_cosine
from lcm.registry import get_registry
from tests._run import train_in_process
from tests._train_fixtures import (LCM, SPACE, clean_env, lcm_command, log_rows,
                                   restored_process_state, run_lcm, train_recipe, walk_documents,
                                   write_shards, write_yaml)

STEPS = 30


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("walk") / "shards", walk_documents(120))


def losses(rows: list[dict[str, float]]) -> list[float]:
    return [r["loss"] for r in rows]


def assert_loss_falls(rows: list[dict[str, float]]) -> None:
    values = losses(rows)
    assert all(math.isfinite(v) for v in values)
    assert np.mean(values[-5:]) < 0.6 * np.mean(values[:5]), values


@pytest.fixture(scope="module")
def reference_run(shards, tmp_path_factory):
    """ZeRO stage 0, fp32: the curve the other configurations are compared with."""
    directory = tmp_path_factory.mktemp("zero0")
    output = directory / "model"
    summary = train_in_process(train_recipe(shards, output, zero_stage=0), directory)
    return output, summary, log_rows(output)


# --------------------------------------------------------------------------- whole runs

def test_training_writes_model_log_plot_and_checkpoints(reference_run, shards):
    output, summary, rows = reference_run
    training = output.with_name("model-training")
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    assert_loss_falls(rows)
    assert summary.steps == STEPS and summary.last_loss == rows[-1]["loss"]
    assert summary.windows_skipped > 0  # single-sentence documents are counted, not hidden
    assert (training / "logs" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    [events] = list((training / "logs").glob("events.out.tfevents.*"))
    assert b"head/l2" in events.read_bytes()  # the head's own figures are logged too
    # keep_checkpoints defaults to 2: steps 20 and 30 remain, `latest` names the last.
    checkpoints = training / CHECKPOINTS
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step_00000020",
                                                            "step_00000030"]
    assert find_latest(checkpoints).name == "step_00000030"
    # The exported model loads through the inference path and beats its own first loss.
    loaded = load_checkpoint(output, get_registry())
    assert loaded.meta["extra"]["training"]["steps"] == STEPS
    assert loaded.normalizer.space == SPACE
    batch = next(iter(BatchStream(shards, loaded.normalizer, max_concepts=8, batch_size=16,
                                  shuffle_buffer=1, num_workers=0, seed=0)))
    with torch.no_grad():
        trained_loss = float(loaded.model(batch.concepts, batch.mask).loss)
    assert trained_loss < 0.6 * rows[0]["loss"]


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_zero_stages_follow_the_stage_0_loss_curve(stage, reference_run, shards, tmp_path):
    output = tmp_path / "model"
    train_in_process(train_recipe(shards, output, zero_stage=stage), tmp_path)
    rows = log_rows(output)
    np.testing.assert_allclose(losses(rows), losses(reference_run[2]), rtol=1e-5)
    assert (output / "model.safetensors").is_file()


def test_bf16_with_gradient_accumulation_and_two_workers(shards, tmp_path):
    recipe = train_recipe(shards, tmp_path / "model", zero_stage=2, precision="bf16",
                          grad_accum=2, steps=20, checkpoint_every=20)
    recipe["data"]["num_workers"] = 2
    summary = train_in_process(recipe, tmp_path)
    rows = log_rows(tmp_path / "model")
    assert_loss_falls(rows)
    assert summary.steps == 20
    # Exported in fp32 whatever the training precision.
    loaded = load_checkpoint(tmp_path / "model", get_registry())
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}


def test_resume_after_a_kill_continues_with_the_same_losses(shards, tmp_path):
    steps = ["train.steps=40", "train.checkpoint_every=5", "train.resume=true"]
    recipe = write_yaml(tmp_path / "recipe.yaml", train_recipe(shards, tmp_path / "model"))

    extensions = tmp_path / "torch_extensions"
    whole = run_lcm(recipe, *steps, "output=" + str(tmp_path / "whole"),
                    TORCH_EXTENSIONS_DIR=str(extensions))
    assert whole.returncode == 0, whole.stderr[-2000:]
    # No native op was compiled: DeepSpeed started in seconds and built nothing.
    assert not extensions.exists()
    ready = float(re.search(r"DeepSpeed engine ready in ([\d.]+) s", whole.stderr).group(1))
    assert ready < 30, ready

    output = tmp_path / "killed"
    training = tmp_path / "killed-training"
    process = subprocess.Popen(lcm_command(recipe, *steps, "output=" + str(output)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    log = training / "logs" / "train_log.csv"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if (training / CHECKPOINTS / "latest").is_file() and log.is_file() and \
                len(log.read_text().splitlines()) > 8:  # a few steps past the checkpoint
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (output / "model.safetensors").exists()  # it never finished
    killed_at = len(read_log(log))

    # The killed run's locks stay: reported (exit 2), not taken over, until the user removes them.
    refused = run_lcm(recipe, *steps, "output=" + str(output))
    assert refused.returncode == 2
    assert f"{output}: stale lock {lock_path(output)} of pid {process.pid}" in refused.stderr
    lock_path(output).unlink()
    lock_path(training).unlink()

    # Simulate a checkpoint that was being written at the kill: never resumed from.
    half_written = training / CHECKPOINTS / "step_00000039.partial"
    half_written.mkdir()
    (half_written / "mp_rank_00_model_states.pt").write_bytes(b"truncated")
    latest = find_latest(training / CHECKPOINTS)

    resumed = run_lcm(recipe, *steps, "output=" + str(output))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from {latest} at step {int(latest.name.split('_')[1])}" in resumed.stderr
    assert int(latest.name.split("_")[1]) < killed_at  # the kill lost steps that were redone

    expected, got = read_log(tmp_path / "whole-training/logs/train_log.csv"), read_log(log)
    assert [r["step"] for r in got] == [r["step"] for r in expected]
    for column in ("loss", "lr", "grad_norm"):
        np.testing.assert_allclose([r[column] for r in got], [r[column] for r in expected],
                                   rtol=1e-6, err_msg=column)
    assert not half_written.exists()  # cleaned up by the next checkpoint


def test_two_ranks_under_the_deepspeed_launcher_split_the_shards(shards, tmp_path):
    from lcm.train.distributed import free_port

    recipe = write_yaml(tmp_path / "recipe.yaml",
                        train_recipe(shards, tmp_path / "model", zero_stage=2, steps=10))
    launcher = LCM.with_name("deepspeed")
    command = [str(launcher), "--num_accelerators", "2", "--no_local_rank", "--master_port",
               str(free_port()), *lcm_command(recipe)]
    result = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ZeRO stage 2, fp32, 2 rank(s), gloo on cpu" in result.stderr
    checkpoint = tmp_path / "model-training" / CHECKPOINTS / "step_00000010"
    for rank in (0, 1):  # each rank saved its data position and its ZeRO partition
        assert (checkpoint / f"trainer_state_rank{rank}.json").is_file()
        assert (checkpoint / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").is_file()
    assert load_checkpoint(tmp_path / "model", get_registry()).meta["extra"]["training"]["steps"] == 10
    assert all(math.isfinite(r["loss"]) for r in log_rows(tmp_path / "model"))


def test_throughput_measurement_trains_without_writing(shards, tmp_path):
    from lcm.train.concept_unit import measure_throughput

    recipe = resolve_recipe(write_yaml(tmp_path / "recipe.yaml", train_recipe(shards, tmp_path / "model")),
                            (), get_registry()).config
    with restored_process_state():
        concepts_per_s = measure_throughput(recipe, steps=4)
    assert math.isfinite(concepts_per_s) and concepts_per_s > 0
    assert list(tmp_path.iterdir()) == [tmp_path / "recipe.yaml"]


# --------------------------------------------------------------------------- bad input

def _corrupt_shards(directory: Path) -> Path:
    """A shard set whose second document has fewer vectors than sentences."""
    import io
    import json

    import webdataset as wds

    documents = walk_documents(4)
    write_shards(directory, documents)
    shard = directory / Manifest.read(directory).shards[0]["path"]
    with wds.TarWriter(str(shard)) as writer:
        for index, doc in enumerate(documents):
            vectors = doc.vectors[:-1] if index == 1 else doc.vectors
            buffer = io.BytesIO()
            np.save(buffer, vectors)
            writer.write({"__key__": doc.id, "sentences.json": json.dumps(doc.sentences).encode(),
                          "vectors.npy": buffer.getvalue(), "meta.json": b"{}"})
    return directory


def test_mismatched_vector_counts_are_refused_with_exit_2(tmp_path):
    shards = _corrupt_shards(tmp_path / "shards")
    recipe = write_yaml(tmp_path / "recipe.yaml", train_recipe(shards, tmp_path / "model"))
    result = run_lcm(recipe)
    assert result.returncode == 2, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "doc00001" in error[0] and "refusing the shard set" in error[0]
    assert not (tmp_path / "model" / "model.safetensors").exists()


def test_a_worker_reading_a_corrupt_shard_raises_the_same_one_line_error(tmp_path):
    shards = _corrupt_shards(tmp_path / "shards")
    with pytest.raises(DataIntegrityError, match=r"^\S+shard-000000.tar: document doc00001 has \d+ vectors"):
        next(iter(_stream(shards, workers=2)))


def test_missing_shards_directory_is_one_line_and_exit_2(tmp_path):
    recipe = train_recipe(tmp_path / "nowhere", tmp_path / "model")
    result = run_lcm(write_yaml(tmp_path / "recipe.yaml", recipe))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "data.shards: file not found" in result.stderr


def test_normalizer_of_another_space_is_refused_before_training(shards, tmp_path):
    other = ConceptSpace("other", SPACE.dim)
    RobustScaler.fit(np.random.default_rng(0).normal(size=(50, SPACE.dim)), other).save(tmp_path)
    recipe = train_recipe(shards, tmp_path / "model")
    recipe["data"]["normalizer"] = str(tmp_path / "normalizer.json")
    with pytest.raises(RecipeError, match="toy-walk .16-d. vectors but the normalizer .* other"):
        resolve_recipe(write_yaml(tmp_path / "recipe.yaml", recipe), (), get_registry())


def test_bad_values_are_all_reported_before_training(shards, tmp_path):
    recipe = train_recipe(shards, tmp_path / "model", steps=0, zero_stage=5, min_lr_ratio=2)
    recipe["data"]["max_concepts"] = 1
    recipe["model"]["overrides"] = {"num_layerz": 2}
    with pytest.raises(RecipeError) as caught:
        resolve_recipe(write_yaml(tmp_path / "recipe.yaml", recipe), (), get_registry())
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "data.max_concepts", "train.steps", "train.min_lr_ratio", "train.zero_stage", "model"]
    assert "num_layerz" in caught.value.problems[-1]


def test_empty_shard_set_is_refused(tmp_path):
    with pytest.raises(DataIntegrityError, match="no documents to write"):
        ShardWriter(tmp_path / "shards", SPACE, encoder="toy-walk").close()
    # One written otherwise (by hand, or an older lcm) is refused by training.
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text(json.dumps(
        {"space": {"name": SPACE.name, "dim": SPACE.dim}, "encoder": "toy-walk", "documents": 0,
         "sentences": 0, "shards": []}))
    RobustScaler.fit(np.zeros((4, SPACE.dim)), SPACE).save(tmp_path / "shards")
    recipe = train_recipe(tmp_path / "shards", tmp_path / "model")
    with pytest.raises(RecipeError, match="holds no documents"):
        resolve_recipe(write_yaml(tmp_path / "recipe.yaml", recipe), (), get_registry())


# --------------------------------------------------------------------------- the parts

def _stream(shards: Path, position: DataPosition | None = None, workers: int = 0,
            rank: int = 0, world_size: int = 1) -> BatchStream:
    normalizer = RobustScaler.load(shards)
    return BatchStream(shards, normalizer, max_concepts=8, batch_size=4, shuffle_buffer=16,
                       num_workers=workers, seed=3, rank=rank, world_size=world_size,
                       position=position)


def _take(stream: BatchStream, count: int) -> list[torch.Tensor]:
    batches = iter(stream)
    return [next(batches).concepts for _ in range(count)]


def test_documents_wrap_into_consecutive_windows():
    vectors = np.arange(20).reshape(10, 2)
    windows = wrap_document(vectors, 4)
    assert [len(w) for w in windows] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(windows), vectors)


def test_batch_order_depends_on_seed_and_epoch_and_resumes_from_a_position(shards):
    stream = _stream(shards)
    per_epoch = sum(1 for _ in _stream(shards).epoch_loader(0))
    run = _take(stream, per_epoch + 5)  # into the second epoch
    again = _take(_stream(shards), per_epoch + 5)
    assert all(torch.equal(a, b) for a, b in zip(run, again))
    resumed = _take(_stream(shards, DataPosition(epoch=1, batches=2)), 3)
    assert all(torch.equal(a, b) for a, b in zip(resumed, run[per_epoch + 2:]))
    assert not torch.equal(run[0], run[per_epoch])  # a new epoch, a new order


@pytest.mark.parametrize("world_size, workers", [(1, 2), (2, 1), (2, 2), (4, 2)])
def test_ranks_and_workers_split_the_data_without_losing_or_repeating_windows(
        shards, world_size, workers):
    def window_sums(rank: int, world_size: int, workers: int) -> list[float]:
        loader = _stream(shards, workers=workers, rank=rank, world_size=world_size).epoch_loader(0)
        return [round(float(row[m].sum()), 3) for b in loader for row, m in zip(b.concepts, b.mask)]

    expected_windows = sum(1 for d in iter_documents(shards)
                           for w in wrap_document(d.vectors, 8) if len(w) >= 2)
    single = sorted(window_sums(0, 1, 0))
    parts = [window_sums(rank, world_size, workers) for rank in range(world_size)]
    assert len(single) == expected_windows
    assert all(parts)  # every rank has data (6 shards < 4 ranks x 2 workers: split by document)
    assert sorted(v for part in parts for v in part) == single


def test_weight_decay_spares_norm_gains_and_biases():
    from lcm.train.engine import parameter_groups
    from tests._model_fixtures import toy_model

    model = toy_model()
    decayed, spared = parameter_groups(model, 0.1)
    assert decayed["weight_decay"] == 0.1 and spared["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in spared["params"])
    norms = [p for name, p in model.named_parameters() if "norm" in name or name.endswith("bias")]
    assert norms and all(any(p is q for q in spared["params"]) for p in norms)
    assert len(decayed["params"]) + len(spared["params"]) == len(list(model.parameters()))


def test_warmup_then_cosine_to_the_floor():
    schedule = [warmup_cosine(s, warmup_steps=4, total_steps=20, min_ratio=0.1) for s in range(21)]
    assert schedule[:4] == [0.25, 0.5, 0.75, 1.0]
    assert schedule[4] == 1.0 and schedule[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(schedule[4:], schedule[5:]))


def test_resume_ignores_partial_and_incomplete_checkpoints(tmp_path):
    root = tmp_path / CHECKPOINTS

    def checkpoint(name: str, complete: bool = True) -> Path:
        directory = root / name
        directory.mkdir(parents=True)
        (directory / "mp_rank_00_model_states.pt").write_bytes(b"x")
        if complete:
            (directory / "trainer_state_rank0.json").write_text("{}")
        return directory

    assert find_latest(root) is None
    good = checkpoint("step_00000010")
    checkpoint("step_00000020.partial")
    checkpoint("step_00000030", complete=False)
    (root / "latest").write_text("step_00000030")  # names the incomplete one
    assert find_latest(root) == good


@pytest.mark.parametrize("cores, ranks, workers, load, threads", [
    (2, 1, 0, 0.1, 2),   # an idle machine: all cores
    (2, 1, 0, 1.2, 1),   # another process busy on one core: 1 (was 2, 23x slower)
    (2, 1, 0, 5.0, 1),   # overloaded: still 1
    (16, 2, 1, 4.0, 5),  # two ranks share the 12 free cores, each minus its worker
])
def test_automatic_threads_use_the_cores_that_are_free(cores, ranks, workers, load, threads):
    from lcm.train.distributed import automatic_threads

    assert automatic_threads(cores, ranks, workers, load) == threads
