"""The plugin manager: registration, duplicates, unknown names, broken plugins, listing."""
from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys

import pytest

from lcm.errors import UnknownComponentError
from lcm.registry import build_registry
from tests._fake_plugins import FakeDecoder, FakeEncoder, plugin_module, standard_plugins


def test_components_are_registered_by_kind_and_name():
    registry = build_registry(entry_points=[], extra_plugins=standard_plugins())
    assert registry.get("encoder", "fake_enc").cls is FakeEncoder
    assert registry.get("decoder", "fake_dec").cls is FakeDecoder
    assert registry.names("task") == ["echo"]
    info = registry.describe(registry.get("encoder", "fake_enc"))
    assert (info["space"], info["dim"], info["modalities"]) == ("fake", 4, ["text"])


def test_a_taken_name_is_recorded_against_the_second_plugin_and_the_first_kept():
    class Other(FakeEncoder):
        pass

    class Another(FakeEncoder):
        name = "another"

    twice = [plugin_module("a", register_encoders=lambda register: register(FakeEncoder)),
             plugin_module("b", register_encoders=lambda register: (register(Other),
                                                                    register(Another)))]
    registry = build_registry(entry_points=[], extra_plugins=twice)
    assert registry.get("encoder", "fake_enc").cls is FakeEncoder
    assert registry.get("encoder", "another").cls is Another  # b's other components stay
    [failure] = registry.failures
    assert failure.plugin == "b"
    assert failure.error == ("encoder 'fake_enc' is registered twice: by a and by b; the second "
                             "is ignored")


def test_a_plugin_calling_sys_exit_at_import_or_in_a_hook_is_isolated(tmp_path, monkeypatch):
    (tmp_path / "lcm_exiting_plugin.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    exiting = md.EntryPoint(name="exiting", value="lcm_exiting_plugin", group="lcm")
    quitter = plugin_module("quitter", register_heads=lambda register: sys.exit(0))
    registry = build_registry(entry_points=[exiting], extra_plugins=[quitter, *standard_plugins()])
    assert [(f.plugin, f.error) for f in registry.failures] == [
        ("exiting", "SystemExit: the plugin called sys.exit(3)"),
        ("quitter", "SystemExit: the plugin called sys.exit(0)")]
    assert registry.names("encoder") == ["fake_enc"]


def test_a_component_breaking_the_contract_is_refused_at_registration():
    class PlainMethod(FakeEncoder):
        name = "plain"

        def concept_space(self, config):
            return None

    class StringSpace(FakeEncoder):
        name = "string"
        concept_space = "minilm"

    bad = plugin_module("bad", register_encoders=lambda register: (register(PlainMethod),))
    worse = plugin_module("worse", register_encoders=lambda register: (register(StringSpace),))
    registry = build_registry(entry_points=[], extra_plugins=[bad, worse, *standard_plugins()])
    assert [f.plugin for f in registry.failures] == ["bad", "worse"]
    assert all("concept_space is not a classmethod" in f.error for f in registry.failures)
    assert registry.names("encoder") == ["fake_enc"]


def test_unknown_name_lists_the_known_ones():
    registry = build_registry(entry_points=[], extra_plugins=standard_plugins())
    with pytest.raises(UnknownComponentError) as info:
        registry.get("encoder", "nope")
    assert "unknown encoder 'nope'" in str(info.value)
    assert "fake_enc" in str(info.value)


def test_a_plugin_that_fails_to_import_breaks_nothing_else():
    broken = md.EntryPoint(name="broken", value="lcm_no_such_module_xyz", group="lcm")
    registry = build_registry(entry_points=[broken], extra_plugins=standard_plugins())
    assert registry.names("encoder") == ["fake_enc"]
    [failure] = registry.failures
    assert failure.plugin == "broken"
    assert "ModuleNotFoundError" in failure.error


def test_a_hook_that_raises_is_recorded_not_fatal():
    def explode(register):
        raise RuntimeError("boom")

    plugins = standard_plugins() + [plugin_module("exploding", register_heads=explode)]
    registry = build_registry(entry_points=[], extra_plugins=plugins)
    assert [f.error for f in registry.failures] == ["RuntimeError: boom"]
    assert registry.names("encoder") == ["fake_enc"]


def test_registering_a_non_component_is_an_error_recorded_against_the_plugin():
    bad = plugin_module("bad", register_encoders=lambda register: register(dict))
    registry = build_registry(entry_points=[], extra_plugins=[bad])
    assert "is not one" in registry.failures[0].error


def test_a_hookimpl_with_a_typo_fails_loudly_but_only_its_plugin():
    typo = plugin_module("typo", register_encoder=lambda register: None)
    registry = build_registry(entry_points=[], extra_plugins=[typo, *standard_plugins()])
    [failure] = registry.failures
    assert failure.plugin == "typo" and "register_encoder" in failure.error
    assert registry.names("encoder") == ["fake_enc"]


def test_every_hookspec_is_documented():
    from lcm import hookspecs

    for name in ("register_encoders", "register_decoders", "register_heads", "register_tasks"):
        assert getattr(hookspecs, name).__doc__.strip()


def _lcm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lcm.cli", *args], capture_output=True, text=True)


def test_plugins_list_json_shows_builtins_with_origin():
    out = _lcm("plugins", "list", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    rows = {(c["kind"], c["name"]): c for c in data["components"]}
    pipeline = rows[("task", "pipeline")]
    assert pipeline["distribution"] == "lcm" and pipeline["module"] == "lcm.tasks.builtin"
    assert data["failures"] == []


def test_plugins_list_filters_by_kind_and_prints_a_table():
    out = _lcm("plugins", "list", "--kind", "task")
    assert out.returncode == 0, out.stderr
    assert "pipeline" in out.stdout and "encoder" not in out.stdout
    bad = _lcm("plugins", "list", "--kind", "nonsense")
    assert bad.returncode == 2
