"""Recipe loading, overrides, validation (all problems at once) and the CLI's error contract."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lcm.config import load_recipe, resolve_recipe, validate_recipe
from lcm.errors import InputFileError, RecipeError, UserError
from lcm.interfaces import ConceptSpace
from lcm.registry import build_registry
from lcm.spaces import write_space
from tests._fake_plugins import EchoTask, standard_plugins

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry():
    return build_registry(extra_plugins=standard_plugins())


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def problems(tmp_path, registry, text, overrides=()):
    return validate_recipe(load_recipe(write(tmp_path, text), overrides), registry).problems


def test_a_valid_recipe_resolves_with_defaults_and_overrides(tmp_path, registry):
    recipe = write(tmp_path, "task: echo\nmessage: hi\nencoder: {name: fake_enc, dim: 4}\n")
    resolved = resolve_recipe(recipe, ["repeat=3"], registry)
    assert resolved.task_cls is EchoTask
    assert (resolved.config.message, resolved.config.repeat) == ("hi", 3)
    encoder = resolved.config.encoder  # resolved once: the class and every option, typed
    assert (encoder.cls.name, encoder.options.dim, encoder.options.space) == ("fake_enc", 4, "fake")
    assert encoder.as_dict() == {"name": "fake_enc", "dim": 4, "space": "fake", "scale": 1.0}
    assert resolved.config.decoder is None


def test_all_problems_are_reported_at_once(tmp_path, registry):
    found = problems(tmp_path, registry, """
task: echo
repeat: many
colour: blue
encoder: {name: fake_enc, dim: four, flavour: x}
decoder: {name: nope}
input: /no/such/file.txt
""")
    text = "\n".join(found)
    assert len(found) == 6, text
    assert "repeat:" in text and "colour: unknown field" in text
    assert "encoder.dim:" in text and "encoder.flavour: unknown field" in text
    assert "decoder.name: unknown decoder 'nope'; known decoders: fake_dec" in text
    assert "input: file not found: /no/such/file.txt" in text


def test_unknown_task_names_the_known_ones(tmp_path, registry):
    [problem] = problems(tmp_path, registry, "task: nope\n")
    assert "unknown task 'nope'" in problem and "echo" in problem


def test_mixed_concept_spaces_are_refused(tmp_path, registry):
    [problem] = problems(tmp_path, registry, """
task: echo
encoder: {name: fake_enc, space: a}
decoder: {name: fake_dec, space: b, dim: 8}
""")
    assert "concept spaces differ" in problem and "a (4-d)" in problem and "b (8-d)" in problem


def test_pipeline_steps_are_validated_together_and_may_read_earlier_outputs(tmp_path, registry):
    out = tmp_path / "made_by_step_one"
    ok = problems(tmp_path, registry, f"""
task: pipeline
vars: {{dir: {out}}}
steps:
  - {{task: echo, output: "${{vars.dir}}"}}
  - {{task: echo, input: "${{vars.dir}}"}}
""")
    assert ok == []
    bad = problems(tmp_path, registry, """
task: pipeline
steps:
  - {task: echo, input: /missing}
  - {task: echo, encoder: {name: fake_enc, space: x}, decoder: {name: fake_dec}}
""")
    assert any("steps[0].input: file not found" in p for p in bad)
    assert any("concept spaces differ" in p for p in bad)


def test_a_recorded_space_on_disk_takes_part_in_the_check(tmp_path):
    from dataclasses import dataclass

    from lcm.fields import component, path
    from lcm.interfaces import Task
    from tests._fake_plugins import plugin_module

    @dataclass
    class ReadConfig:
        shards: str = path(must_exist=True, space_source=True)
        encoder: dict = component("encoder", default="fake_enc")

    class ReadTask(Task):
        name = "read"
        Config = ReadConfig

        def run(self, recipe, context):
            pass

    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    write_space(shard_dir, ConceptSpace("other", 4))
    reg = build_registry(extra_plugins=[*standard_plugins(),
                                        plugin_module("r", register_tasks=lambda register: register(ReadTask))])
    [problem] = problems(tmp_path, reg, f"task: read\nshards: {shard_dir}\n")
    assert "concept spaces differ" in problem and "other (4-d)" in problem
    write_space(shard_dir, ConceptSpace("fake", 4))
    assert problems(tmp_path, reg, f"task: read\nshards: {shard_dir}\n") == []


def test_missing_recipe_and_bad_yaml_and_bad_override(tmp_path, registry):
    with pytest.raises(InputFileError, match="recipe file not found"):
        load_recipe(tmp_path / "absent.yaml")
    with pytest.raises(InputFileError, match="not valid YAML"):
        load_recipe(write(tmp_path, "task: [unclosed\n"))
    with pytest.raises(UserError, match="key=value"):
        load_recipe(write(tmp_path, "task: echo\n"), ["novalue"])
    with pytest.raises(RecipeError):
        resolve_recipe(write(tmp_path, "task: echo\nrepeat: x\n"), (), registry)


def lcm(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lcm.cli", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_cli_user_error_is_one_line_exit_2_and_debug_shows_traceback(tmp_path):
    recipe = write(tmp_path, "task: pipeline\nsteps:\n  - {task: no_such_task}\n")
    out = lcm("run", str(recipe))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "unknown task 'no_such_task'" in out.stderr
    assert "Traceback" not in out.stderr
    debug = lcm("--debug", "run", str(recipe))
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_cli_missing_recipe_and_dump_config(tmp_path):
    missing = lcm("run", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml: recipe file not found" in missing.stderr
    recipe = write(tmp_path, "task: pipeline\nsteps: []\n")
    refused = lcm("run", str(recipe), "--dump-config")
    assert refused.returncode == 2 and "a pipeline needs steps" in refused.stderr
    dumped = lcm("run", "recipes/text_summarize.yaml", "max_summary_concepts=7", "--dump-config")
    assert dumped.returncode == 0, dumped.stderr
    assert "task: summarize" in dumped.stdout and "max_summary_concepts: 7" in dumped.stdout
    assert "id_field: id" in dumped.stdout  # a default the recipe does not set
    # every option of each component, with its value (the recipe names only the plugins)
    for option in ("  name: minilm", "  name: retrieval", "  observed: include", "  batch_size:",
                   "  normalize_embeddings: false"):  # the encoder's, whole too
        assert option in dumped.stdout, dumped.stdout


def test_every_shipped_recipe_validates():
    recipes = sorted((REPO / "recipes").glob("*.yaml"))
    assert recipes, "recipes/ holds no recipe"
    out = lcm("recipes", "validate", *map(str, recipes))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(": ok") == len(recipes)


def test_every_shipped_recipe_starts_with_its_command():
    for recipe in sorted((REPO / "recipes").glob("*.yaml")):
        first = recipe.read_text().splitlines()[0]
        assert first.startswith("# lcm run recipes/" + recipe.name), recipe


def test_recipes_validate_reports_each_bad_recipe(tmp_path):
    bad = write(tmp_path, "task: pipeline\nsteps: [{task: zzz}]\n", "bad.yaml")
    out = lcm("recipes", "validate", str(bad))
    assert out.returncode == 2
    assert "bad.yaml: 1 problem(s)" in out.stdout and "unknown task 'zzz'" in out.stdout


def test_every_package_folder_is_listed_in_pyproject():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for root, prefix in (("core", "lcm"), ("plugins", "lcm.plugins")):
        for init in (REPO / root).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / root).parts
            found.add(".".join((prefix, *rel)))
    assert found == listed


def test_every_out_of_range_option_is_reported_at_once(tmp_path):
    """Ranges are declared on the fields (head, diffusion, train, trunk): validation reports
    them all, from ``--dump-config`` and ``recipes validate`` alike, before anything is built."""
    bad = ["head.diffusion.guidance_rescale=2", "head.cfg_dropout=1.5", "train.min_lr_ratio=3",
           "data.batch_size=0", "head.diffusion.inference_steps=500"]
    expected = ["head.diffusion.guidance_rescale: must be at most 1, got 2",
                "head.cfg_dropout: must be less than 1, got 1.5",
                "train.min_lr_ratio: must be at most 1, got 3", "data.batch_size: must be at least 1",
                "head.diffusion: inference_steps=500 must be at most train_steps=100"]
    dumped = lcm("run", "recipes/train_two_tower_wiki.yaml", *bad, "--dump-config")
    assert dumped.returncode == 2 and "Traceback" not in dumped.stderr
    for problem in expected:
        assert problem in dumped.stderr, dumped.stderr
    recipe = write(tmp_path, (REPO / "recipes/train_two_tower_wiki.yaml").read_text())
    body = load_recipe(recipe, bad)
    recipe.write_text(OmegaConf.to_yaml(body))
    validated = lcm("recipes", "validate", str(recipe))
    assert validated.returncode == 2
    for problem in expected:
        assert problem in validated.stdout, validated.stdout


@pytest.mark.parametrize("value", ["${oc.env:HOME}/out", "runs/${oc.decode:'1'}",
                                   "${oc.select:vars.base}"])
def test_resolvers_other_than_interpolation_are_refused(tmp_path, value, monkeypatch):
    monkeypatch.setenv("HOME", "/secret")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: echo\nvars: {base: runs}\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe, [f"output={value}"])
    [problem] = caught.value.problems
    assert problem.startswith("output: resolver ${oc.") and "is not allowed in recipes" in problem
    assert "/secret" not in str(caught.value)
    assert load_recipe(recipe, ["output=${vars.base}/x"]).output == "runs/x"


def test_overrides_reach_pipeline_steps_and_a_bad_one_is_one_line(tmp_path):
    recipe = tmp_path / "p.yaml"
    recipe.write_text("task: pipeline\nsteps:\n  - {task: echo, repeat: 1}\n  - {task: echo, repeat: 2}\n")
    cfg = load_recipe(recipe, ["steps.1.repeat=5", "steps.0.message=hi"])
    assert [s.repeat for s in cfg.steps] == [1, 5] and cfg.steps[0].message == "hi"
    with pytest.raises(UserError, match=r"^bad override 'steps.7.repeat=5': list index out of range$"):
        load_recipe(recipe, ["steps.7.repeat=5"])


def test_naming_another_plugin_drops_the_old_plugins_options(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: echo\nencoder: {name: fake_enc, scale: 2.0}\n")
    assert OmegaConf.to_container(load_recipe(recipe, ["encoder.name=other", "encoder.dim=3"]).encoder) == \
        {"name": "other", "dim": 3}
    assert load_recipe(recipe, ["encoder.name=fake_enc"]).encoder.scale == 2.0  # same plugin: kept


def test_a_relative_path_not_found_says_what_it_is_relative_to(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: echo\ninput: data/missing.txt\n")
    registry = build_registry(entry_points=[], extra_plugins=standard_plugins())
    assert validate_recipe(load_recipe(recipe), registry).problems == [
        f"input: file not found: data/missing.txt (relative to {tmp_path})"]


def test_recipes_validate_accepts_a_folder(tmp_path, capsys):
    from lcm.cli import main

    (tmp_path / "a.yaml").write_text("task: nope\n")
    (tmp_path / "b.yaml").write_text("task: pipeline\nsteps: []\n")
    assert main(["recipes", "validate", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert f"{tmp_path / 'a.yaml'}: 1 problem(s)" in out and f"{tmp_path / 'b.yaml'}: 1 problem(s)" in out


def test_a_huge_error_is_one_short_line_and_whole_with_debug(tmp_path, capsys, monkeypatch):
    from lcm.cli import DEBUG_ENV, MAX_ERROR_CHARS, main

    monkeypatch.setenv(DEBUG_ENV, "0")  # --debug sets it; restored after the test

    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: train\n" + "".join(f"field_{i}: 1\n" for i in range(400)))
    assert main(["run", str(recipe)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert len(line) < MAX_ERROR_CHARS + 100 and line.endswith("more characters with --debug)")
    assert main(["--debug", "run", str(recipe)]) == 2
    assert "field_399: unknown field" in capsys.readouterr().err


def test_validation_builds_each_schema_once(tmp_path, monkeypatch):
    """Building a structured schema was most of `lcm recipes validate`'s 7 s: once per field."""
    import collections

    import lcm.config
    from tests._fake_plugins import EchoConfig

    built = collections.Counter()
    structured = OmegaConf.structured
    monkeypatch.setattr(OmegaConf, "structured", lambda obj, *a, **k: (built.update([obj]),
                                                                      structured(obj, *a, **k))[1])
    lcm.config._structured.cache_clear()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: echo\nmessage: hi\nrepeat: 3\n")
    registry = build_registry(entry_points=[], extra_plugins=standard_plugins())
    for _ in range(2):
        assert validate_recipe(load_recipe(recipe), registry).problems == []
    assert built[EchoConfig] == 1


def test_an_input_an_earlier_recipe_writes_is_named_and_accepted_when_only_dumping(tmp_path):
    (tmp_path / "a_writes.yaml").write_text(f"task: echo\noutput: {tmp_path / 'made.txt'}\n")
    reader = tmp_path / "b_reads.yaml"
    reader.write_text(f"task: echo\ninput: {tmp_path / 'made.txt'}\n")
    registry = build_registry(entry_points=[], extra_plugins=standard_plugins())
    assert resolve_recipe(reader, (), registry, planning=True).config.input == str(tmp_path / "made.txt")
    with pytest.raises(RecipeError) as caught:
        resolve_recipe(reader, (), registry)
    assert caught.value.problems == [f"input: file not found: {tmp_path / 'made.txt'}; "
                                     f"{tmp_path / 'a_writes.yaml'} writes it, run that first"]


def test_every_shipped_recipe_dumps_its_whole_config(capsys, monkeypatch):
    """--dump-config prints each recipe with every component option resolved (a train recipe's
    head with all its diffusion settings, a summarize recipe's model head from its checkpoint)."""
    from lcm.cli import main

    monkeypatch.chdir(REPO)  # recipes name paths relative to the repository
    for recipe in sorted((REPO / "recipes").glob("*.yaml")):
        assert main(["run", str(recipe), "--dump-config"]) == 0, capsys.readouterr().err
        dumped = capsys.readouterr().out
        assert dumped.startswith("task:"), recipe
        if recipe.name.startswith("train_two_tower"):
            assert "  diffusion:\n    train_steps: 100\n" in dumped


def _component_fields(config: type, seen: set[type]) -> list[tuple[str, str]]:
    """(``Config.field``, its annotation as written) of every ``component()`` field of
    ``config``, nested option dataclasses included."""
    import dataclasses
    import typing

    from lcm.fields import META_COMPONENT

    if config in seen:
        return []
    seen.add(config)
    found, hints = [], typing.get_type_hints(config)
    for f in dataclasses.fields(config):
        if META_COMPONENT in f.metadata:
            found.append((f"{config.__qualname__}.{f.name}", str(f.type)))
        elif dataclasses.is_dataclass(hints[f.name]):
            found.extend(_component_fields(hints[f.name], seen))
    return found


def test_every_component_field_is_typed_as_a_section_and_holds_a_spec(tmp_path, registry):
    """``ComponentSection`` is what a task reads (a ``ComponentSpec``) while OmegaConf's schema
    sees ``Any``; the resolved recipe holds specs, and a value that is no section is refused."""
    from lcm.components import ComponentSpec, resolve_sections

    seen: set[type] = set()
    declared = [pair for info in build_registry().all() if info.module.startswith("lcm")
                for pair in _component_fields(info.cls.Config, seen)]
    assert len(declared) >= 12  # tasks' encoders/decoders, train's head, a cascade's encoder
    untyped = [name for name, kind in declared
               if kind not in ("ComponentSection", "Optional[ComponentSection]")]
    assert untyped == []

    recipe = write(tmp_path, "task: echo\nencoder: {name: fake_enc, dim: 4}\n")
    config = resolve_recipe(recipe, [], registry).config
    assert isinstance(config.encoder, ComponentSpec) and config.encoder.options.dim == 4
    assert config.decoder is None
    with pytest.raises(UserError, match="encoder: expected a section {name: ...} of a encoder"):
        resolve_sections(type(config)(encoder="fake_enc"), registry)
