"""The concept Transformer, the mse head, named architectures and checkpoints."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

from lcm.errors import InputFileError, UserError
from lcm.interfaces import ConceptSpace
from lcm.model.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint
from lcm.model.config import arch_names, get_arch
from lcm.model.lcm import count_parameters
from lcm.model.transformer import RMSNorm, RotaryEmbedding
from lcm.registry import get_registry
from lcm.model.heads import context_states
from tests._model_fixtures import TOY_SPACE, model_of, pad, random_concepts, toy_model, toy_normalizer

# --------------------------------------------------------------------------- architectures

def test_named_archs_exist_and_unknown_names_list_the_known_ones():
    assert {"toy", "small", "base_1_6b"} <= set(arch_names())
    with pytest.raises(UserError, match="known architectures: .*base_1_6b.*toy"):
        get_arch("huge_9000")


def test_arch_overrides_apply_and_bad_ones_are_refused():
    assert get_arch("toy", {"num_layers": 3}).num_layers == 3
    with pytest.raises(UserError, match="num_layerz"):
        get_arch("toy", {"num_layerz": 3})
    with pytest.raises(UserError, match="not divisible"):
        get_arch("toy", {"num_heads": 3})


def test_base_1_6b_parameter_count_matches_the_reference_within_one_percent():
    """The reference's base_lcm_1_6B docstring: 1,647,635,456 parameters (SONAR, 1024-d)."""
    with torch.device("meta"):
        model = model_of("base_1_6b", {}, {"name": "mse"}, ConceptSpace("sonar", 1024))
    count = count_parameters(model)
    assert abs(count - 1_647_635_456) / 1_647_635_456 < 0.01, count


# --------------------------------------------------------------------------- building blocks

def test_rmsnorm_gives_unit_rms_with_unit_gain():
    x = torch.randn(4, 7, 32) * 5 + 3
    y = RMSNorm(32)(x)
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(4, 7), atol=1e-3)


def test_rope_preserves_norms_and_depends_only_on_relative_position():
    rope = RotaryEmbedding(16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(pq: int, pk: int) -> float:
        rq = rope(q, torch.tensor([[pq]]))
        rk = rope(k, torch.tensor([[pk]]))
        assert torch.allclose(rq.norm(), q.norm(), atol=1e-5)
        return float((rq * rk).sum())

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


# --------------------------------------------------------------------------- the trunk

def test_shapes_of_trunk_loss_and_prediction():
    model = toy_model()
    x = random_concepts(3, 6)
    hidden = context_states(model.backbone, x)
    assert hidden.shape == (3, 6, model.config.model_dim)
    out = model(x, torch.ones(3, 6, dtype=torch.bool))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert set(out.metrics) >= {"mse", "l2"}
    assert model.head.postnet(hidden[:, -1]).shape == (3, TOY_SPACE.dim)


@pytest.mark.parametrize("position_encoding", ["rope", "learned"])
def test_causality_later_concepts_do_not_change_earlier_outputs(position_encoding):
    model = toy_model(position_encoding=position_encoding)
    x = random_concepts(2, 8)
    changed = x.clone()
    changed[:, 5:] = torch.randn(2, 3, TOY_SPACE.dim)
    a, b = context_states(model.backbone, x), context_states(model.backbone, changed)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-3)


@pytest.mark.parametrize("position_encoding", ["rope", "learned"])
def test_kv_cache_incremental_equals_full_recomputation(position_encoding):
    model = toy_model(position_encoding=position_encoding)
    x = random_concepts(2, 9)
    full = context_states(model.backbone, x)
    cache = model.trunk.new_cache(2, capacity=2)  # small: exercises growth
    pieces = [context_states(model.backbone, x[:, :4], cache=cache)]
    for t in range(4, 9):
        pieces.append(context_states(model.backbone, x[:, t:t + 1], cache=cache))
    assert cache.length == 9
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_with_cache_equals_each_document_alone(side):
    model = toy_model()
    docs = [random_concepts(1, n, seed=n)[0] for n in (5, 2, 7)]
    extra = random_concepts(3, 3, seed=99)  # three more concepts fed one by one
    batch = pad(docs, side)
    cache = model.trunk.new_cache(3)
    prefill = context_states(model.backbone, batch.concepts, batch.mask, cache)
    steps = [context_states(model.backbone, extra[:, t:t + 1], cache=cache)[:, 0] for t in range(3)]
    for i, doc in enumerate(docs):
        alone = context_states(model.backbone, torch.cat([doc, extra[i]])[None])[0]
        assert torch.allclose(prefill[i][batch.mask[i]], alone[: len(doc)], atol=1e-5)
        assert torch.allclose(torch.stack([s[i] for s in steps]), alone[len(doc):], atol=1e-5)


def test_cache_rollback_forgets_an_uncommitted_position():
    model = toy_model()
    x = random_concepts(1, 5)
    cache = model.trunk.new_cache(1)
    context_states(model.backbone, x[:, :3], cache=cache)
    context_states(model.backbone, torch.randn(1, 1, TOY_SPACE.dim), cache=cache)  # a trial step
    cache.rollback(3)
    after = context_states(model.backbone, x[:, 3:], cache=cache)
    assert torch.allclose(after, context_states(model.backbone, x)[:, 3:], atol=1e-5)


# --------------------------------------------------------------------------- the mse head

def test_mse_loss_ignores_padding():
    model = toy_model()
    doc = random_concepts(1, 4)
    padded = torch.cat([doc, torch.full((1, 3, TOY_SPACE.dim), 50.0)], dim=1)
    mask = torch.tensor([[True] * 4 + [False] * 3])
    assert model(padded, mask).loss.item() == pytest.approx(model(doc).loss.item(), rel=1e-5)


def test_mse_loss_falls_when_fitting_a_synthetic_sequence():
    """Concept t+1 is a fixed rotation of concept t: a Base-LCM must learn it."""
    torch.manual_seed(0)
    model = toy_model().train()
    rotation, _ = torch.linalg.qr(torch.randn(TOY_SPACE.dim, TOY_SPACE.dim))
    start = torch.randn(16, 1, TOY_SPACE.dim)
    seq = [start]
    for _ in range(7):
        seq.append(seq[-1] @ rotation)
    concepts = torch.cat(seq, dim=1)  # (16, 8, D)
    mask = torch.ones(16, 8, dtype=torch.bool)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model(concepts, mask).loss.item()
    for _ in range(150):
        loss = model(concepts, mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first, (first, loss.item())


# --------------------------------------------------------------------------- checkpoints

MAIN_TOY_MSE_WEIGHTS = (
    ["head.postnet.bias", "head.postnet.weight", "prenet.linear.bias", "prenet.linear.weight",
     "trunk.final_norm.weight"]
    + [f"trunk.layers.{i}.{name}.weight" for i in (0, 1)
       for name in ("attn.out", "attn.qkv", "attn_norm", "ffn.down", "ffn.gate", "ffn.up",
                    "ffn_norm")])
"""The weight names a toy ``mse`` checkpoint held before the head's view of the model was
renamed (``trunk_view`` -> ``backbone``): the view is no module, so they did not change."""


def test_a_checkpoint_with_the_earlier_weight_names_loads(tmp_path):
    from safetensors.torch import load_file, save_file

    model = toy_model(seed=3)
    target = save_checkpoint(tmp_path / "ckpt", model, toy_normalizer())
    weights = load_file(str(target / WEIGHTS_FILE))
    assert sorted(weights) == sorted(MAIN_TOY_MSE_WEIGHTS)
    save_file({name: weights[name].clone() for name in MAIN_TOY_MSE_WEIGHTS},
              str(target / WEIGHTS_FILE))  # written by name, as the earlier code wrote them
    loaded = load_checkpoint(target, get_registry())
    x = random_concepts(2, 5)
    assert torch.equal(loaded.model(x).loss, model.eval()(x).loss)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model, normalizer = toy_model(seed=3), toy_normalizer()
    target = save_checkpoint(tmp_path / "ckpt", model, normalizer, extra={"step": 7})
    assert sorted(os.listdir(target)) == [".lcm-output", "concept_space.json", "config.json",
                                          "model.safetensors", "normalizer.json"]
    loaded = load_checkpoint(target, get_registry())
    x = random_concepts(2, 5)
    assert torch.equal(context_states(loaded.model.backbone, x), context_states(model.backbone, x))
    assert loaded.space == TOY_SPACE and loaded.meta["extra"] == {"step": 7}
    assert loaded.meta["arch"] == "toy" and loaded.meta["head"] == {"name": "mse", "postnet_bias": True}
    assert (loaded.normalizer.center == normalizer.center).all()


def test_failed_save_leaves_no_partial_directory_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model, normalizer = toy_model(), toy_normalizer()
    target = tmp_path / "ckpt"

    def broken_save(directory):
        raise OSError("disk full")

    monkeypatch.setattr(normalizer, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, model, normalizer)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary directory

    good = toy_normalizer()
    save_checkpoint(target, model, good, extra={"step": 1})
    with pytest.raises(OSError):
        save_checkpoint(target, toy_model(seed=5), normalizer, extra={"step": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    assert load_checkpoint(target, get_registry()).meta["extra"] == {"step": 1}


def test_bad_checkpoints_are_refused_naming_the_file(tmp_path):
    with pytest.raises(InputFileError, match="checkpoint directory not found"):
        load_checkpoint(tmp_path / "nowhere", get_registry())
    target = save_checkpoint(tmp_path / "ckpt", toy_model(), toy_normalizer())
    (target / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(InputFileError, match=r"model\.safetensors"):
        load_checkpoint(target, get_registry())
    (target / "config.json").write_text("{not json")
    with pytest.raises(InputFileError, match=r"config\.json"):
        load_checkpoint(target, get_registry())


def test_weights_of_another_architecture_are_refused(tmp_path):
    target = save_checkpoint(tmp_path / "ckpt", toy_model(), toy_normalizer())
    meta = json.loads((target / "config.json").read_text())
    meta["transformer"]["ffn_inner_dim"] = 48
    (target / "config.json").write_text(json.dumps(meta))
    with pytest.raises(InputFileError, match="do not fit"):
        load_checkpoint(target, get_registry())


def test_parameter_count_of_toy_is_what_its_layers_add_up_to():
    model = toy_model()
    cfg, D = model.config, TOY_SPACE.dim
    d, f = cfg.model_dim, cfg.ffn_inner_dim
    per_layer = 4 * d * d + 3 * d * f + 2 * d  # attention, SwiGLU, two norms (no biases)
    expected = (D * d + d) + cfg.num_layers * per_layer + d + (d * D + D)
    assert count_parameters(model) == expected
    assert math.isclose(count_parameters(model, trainable_only=True), expected)


def test_a_malformed_concept_space_record_is_one_line_naming_its_file(tmp_path):
    from lcm.spaces import SPACE_FILE, read_space, write_space

    write_space(tmp_path, TOY_SPACE)
    assert read_space(tmp_path) == TOY_SPACE == ConceptSpace.from_record(TOY_SPACE.record())
    (tmp_path / SPACE_FILE).write_text('{"name": "x", "dim": -3}')
    with pytest.raises(InputFileError, match=f"{SPACE_FILE}: malformed concept space"):
        read_space(tmp_path)
