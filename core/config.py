"""Recipes: loading YAML, merging ``key=value`` overrides, validating everything at once.

A task's ``Config`` dataclass is the schema of its recipe. Fields built with ``component()``
name a plugin by ``name`` and carry that plugin's own options; fields built with ``path()`` are
checked on disk. Validation walks the schema and the recipe together and collects every
problem (unknown fields, wrong types, unknown plugins, missing files, mixed concept spaces)
before anything runs, in the spirit of torchtune's config validation.
"""
from __future__ import annotations

import functools
import glob
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lcm.components import plain, resolve, resolve_sections
from lcm.errors import InputFileError, RecipeError, UnknownComponentError, UserError
from lcm.fields import (
    META_COMPONENT,
    META_OUTPUT,
    META_PATH,
    META_REQUIRES,
    META_SPACE_SOURCE,
    field_problems,
    missing_capability,
    own_problems,
)
from lcm.interfaces import ConceptSpace
from lcm.interpolation import interpolation_problems
from lcm.model.checkpoint import CONFIG_FILE, checkpoint_head, read_checkpoint_meta
from lcm.recipe_marks import key_marks, locate
from lcm.spaces import read_space

if TYPE_CHECKING:
    from lcm.registry import Registry

RESERVED_KEYS = ("task", "overwrite")
"""Keys of every recipe body besides the task's own fields; ``overwrite``: replace earlier
lcm outputs (see ``lcm.outputs``)."""


# --------------------------------------------------------------------------- loading

def load_recipe(source: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Read a recipe file and merge command-line ``key=value`` overrides into it."""
    source = Path(source)
    if not source.is_file():
        raise InputFileError(source, "recipe file not found")
    try:
        cfg = OmegaConf.load(source)
    except Exception as exc:
        raise _yaml_error(source, exc) from None
    if not isinstance(cfg, DictConfig):
        raise InputFileError(source, "a recipe must be a mapping of fields")
    for item in overrides:
        apply_override(cfg, item)
    problems = interpolation_problems(OmegaConf.to_container(cfg, resolve=False))
    if problems:
        raise RecipeError(str(source), problems)
    return cfg


def _yaml_error(source: Path, exc: Exception) -> InputFileError:
    """A YAML parse error as ``file:line:column: not valid YAML: problem``, where the parser
    marked a place (PyYAML counts from 0; editors from 1)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or _first_line(exc)
    if mark is None:
        return InputFileError(source, f"not valid YAML: {problem}")
    return InputFileError(f"{source}:{mark.line + 1}:{mark.column + 1}", f"not valid YAML: {problem}")


def apply_override(cfg: DictConfig, item: str) -> None:
    """Apply one ``key=value`` override in place.

    Keys may index lists (``steps.2.train.steps=5``: a pipeline's third step). Setting a
    component's ``name`` to another plugin replaces its whole section, since the old plugin's
    options mean nothing to the new one (later overrides may set the new one's options).
    """
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise UserError(f"override {item!r} is not of the form key=value")
    try:
        value = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={text}"]), resolve=False)["v"]
        parent, _, leaf = key.rpartition(".")
        if leaf == "name" and parent:
            section = OmegaConf.select(cfg, parent, default=None)
            if isinstance(section, DictConfig) and section.get("name") != value:
                OmegaConf.update(cfg, parent, {"name": value}, merge=False)
                return
        OmegaConf.update(cfg, key, value, merge=True)
    except (OmegaConfBaseException, ValueError, TypeError) as exc:
        raise UserError(f"bad override {item!r}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# --------------------------------------------------------------------------- validation

@dataclass
class Validation:
    """What validation found: problems, and the concept spaces each part declared."""

    problems: list[str] = field(default_factory=list)
    spaces: list[tuple[str, ConceptSpace]] = field(default_factory=list)
    produced: set[str] = field(default_factory=set)  # outputs of earlier pipeline steps
    writers: dict[str, str] = field(default_factory=dict)
    """Recipes beside this one by the paths they write: named where such a path is missing."""

    def will_exist(self, value: Any) -> bool:
        """A path that exists (or a glob that matches one), or an earlier step's output."""
        text = str(value)
        return (Path(text).exists() or _canonical(value) in self.produced
                or (glob.has_magic(text) and next(glob.iglob(text, recursive=True), None) is not None))


def _canonical(value: Any) -> str:
    return str(Path(str(value)).resolve())


def _type_hints(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema)


@functools.lru_cache(maxsize=None)
def _structured(schema: type) -> DictConfig:
    """The schema as an OmegaConf config, built once: building it is most of validation's time
    (merging copies it, so the cached one is never changed)."""
    return OmegaConf.structured(schema)


def _check_scalar(schema: type, name: str, value: Any) -> str | None:
    """Type-check one field by merging it alone into the structured schema."""
    try:
        OmegaConf.merge(_structured(schema), {name: value})
    except OmegaConfBaseException as exc:
        msg = _first_line(exc)
        return msg.split("\n")[0]
    return None


def validate_section(schema: type, values: Any, where: str, result: Validation,
                     registry: "Registry") -> None:
    """Validate ``values`` against dataclass ``schema``; append problems to ``result``."""
    if values is None:
        values = {}
    if not isinstance(values, (dict, DictConfig)):
        result.problems.append(f"{where or 'recipe'}: expected a mapping, got {values!r}")
        return
    hints = _type_hints(schema)
    known = {f.name: f for f in fields(schema)}
    for key in values:
        if key not in known:
            label = f"{where}.{key}" if where else str(key)
            result.problems.append(f"{label}: unknown field (known: {', '.join(known)})")
    for f in known.values():
        label = f"{where}.{f.name}" if where else f.name
        present = f.name in values
        value = values[f.name] if present else None
        if META_COMPONENT in f.metadata:
            if present or f.default_factory is not MISSING:
                spec = value if present else f.default_factory()
                if spec is not None:
                    _validate_component(f.metadata[META_COMPONENT], spec, label, result, registry,
                                        f.metadata.get(META_REQUIRES))
            continue
        if not present:
            if f.default is MISSING and f.default_factory is MISSING:
                result.problems.append(f"{label}: required field is missing")
            continue
        hint = hints.get(f.name)
        if is_dataclass(hint):
            validate_section(hint, value, label, result, registry)
            continue
        if isinstance(value, (DictConfig, ListConfig)) and OmegaConf.is_missing(values, f.name):
            result.problems.append(f"{label}: required field is missing")
            continue
        problem = _check_scalar(schema, f.name, value)
        if problem:
            result.problems.append(f"{label}: {problem}")
            continue
        result.problems.extend(f"{label}: {p}" for p in field_problems(f, value))
        if f.metadata.get(META_OUTPUT) and value is not None:
            result.produced.add(_canonical(value))
        elif f.metadata.get(META_PATH) and value is not None and not result.will_exist(value):
            relative = "" if Path(str(value)).is_absolute() else f" (relative to {Path.cwd()})"
            writer = result.writers.get(_canonical(value))
            hint = f"; {writer} writes it, run that first" if writer else ""
            result.problems.append(f"{label}: file not found: {value}{relative}{hint}")
        if f.metadata.get(META_SPACE_SOURCE) and value is not None and Path(str(value)).exists():
            space = read_space(str(value))
            if space is not None:
                result.spaces.append((f"{label} ({value})", space))
            result.problems.extend(_checkpoint_component_problems(label, value, registry))
    if hasattr(schema, "problems"):
        result.problems.extend(_cross_field_problems(schema, values, where))


def _checkpoint_component_problems(label: str, value: Any, registry: "Registry") -> list[str]:
    """A model checkpoint whose head, or a component the head's options name, is not
    installed: said at validation, with the plugin package the checkpoint recorded, instead
    of once the run has started."""
    if not Path(str(value), CONFIG_FILE).is_file():
        return []
    try:
        meta = read_checkpoint_meta(value)
    except InputFileError:  # another kind of folder (a decoder's), or reported when it loads
        return []
    try:
        checkpoint_head(meta, registry, value)
    except UserError as exc:
        return [f"{label}: {exc}"]
    return []


def _cross_field_problems(schema: type, values: Any, where: str) -> list[str]:
    """The schema's own ``problems()`` of ``values``, when they make an instance at all (a
    value of the wrong type has been reported already)."""
    try:
        options = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
        return own_problems(options, where)
    except (OmegaConfBaseException, ValueError, TypeError, ArithmeticError):
        return []


def _validate_component(kind: str, spec: Any, label: str, result: Validation, registry: "Registry",
                        requires: type | None = None) -> None:
    if not isinstance(spec, (dict, DictConfig)) or "name" not in spec:
        result.problems.append(f"{label}: expected a mapping with a 'name' of a {kind} plugin")
        return
    try:
        info = registry.get(kind, str(spec["name"]))
    except UnknownComponentError as exc:
        result.problems.append(f"{label}.name: {exc}")
        return
    lacking = missing_capability(info.cls, requires)
    if lacking:
        result.problems.append(f"{label}.name: {lacking}")
        return
    options = {k: v for k, v in spec.items() if k != "name"}
    before = len(result.problems)
    validate_section(info.cls.Config, options, label, result, registry)
    if len(result.problems) == before:
        try:
            resolved = resolve(registry, kind, spec)
            space = resolved.cls.concept_space(resolved.options)
        except Exception as exc:  # a component that cannot tell its space is a recipe problem
            result.problems.append(f"{label}: {exc}")
            return
        if space is not None:
            result.spaces.append((f"{label} ({info.name})", space))


def check_spaces(spaces: list[tuple[str, ConceptSpace]]) -> list[str]:
    """One problem if the parts of a recipe live in different concept spaces."""
    distinct = {space for _, space in spaces}
    if len(distinct) <= 1:
        return []
    listing = "; ".join(f"{where}: {space}" for where, space in spaces)
    return [f"concept spaces differ: {listing}"]


# --------------------------------------------------------------------------- whole recipes

@dataclass
class ResolvedRecipe:
    """A validated recipe: the task to run and its typed config."""

    source: str
    task_name: str
    task_cls: type
    config: Any  # an instance of task_cls.Config
    raw: DictConfig
    overwrite: bool = False
    """Replace earlier lcm outputs (``overwrite=true``)."""


def validate_recipe(cfg: DictConfig, registry: "Registry", source: str = "recipe",
                    produced: set[str] | None = None,
                    writers: dict[str, str] | None = None) -> Validation:
    """Every problem of a loaded recipe, without running it.

    ``produced``: paths that other recipes of the same set write (see ``validate_recipes``);
    ``writers``: recipes by the paths they write, named where such a path is missing.
    """
    result = Validation(produced=set(produced or ()), writers=dict(writers or {}))
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        result.problems.append(f"cannot resolve an interpolation: {_first_line(exc)}")
        return result
    validate_task_body(container, "", result, registry)
    result.problems.extend(check_spaces(result.spaces))
    return result


def validate_recipes(sources: list[Path], registry: "Registry") -> dict[Path, list[str]]:
    """Problems of each recipe of a set, where one recipe may read what another writes.

    Shipped recipes form chains (prepare -> fit_normalizer -> train -> generate) whose inputs
    exist only once the earlier ones ran; validating them as a set accepts those inputs.
    """
    loaded: dict[Path, Any] = {}
    problems: dict[Path, list[str]] = {}
    for source in sources:
        try:
            loaded[source] = load_recipe(source)
        except UserError as exc:
            problems[source] = [str(exc)]
    produced: set[str] = set()
    for cfg in loaded.values():
        produced |= validate_recipe(cfg, registry).produced
    for source, cfg in loaded.items():
        problems[source] = validate_recipe(cfg, registry, str(source), produced).problems
        if problems[source]:
            writers = sibling_writers(source, registry)
            problems[source] = validate_recipe(cfg, registry, str(source), produced,
                                               writers).problems
    return {source: problems[source] for source in sources}


MAX_SIBLING_BYTES = 1_000_000
"""A ``.yaml`` beside a recipe larger than this is not read for what it writes."""


def sibling_writers(source: str | Path, registry: "Registry") -> dict[str, str]:
    """The recipes in ``source``'s folder by the paths they write (a chain's earlier steps).

    Only each sibling's ``output`` keys (its own, its pipeline steps') are resolved: a sibling
    is never validated or resolved whole, so one odd file beside a faulty recipe costs little.
    """
    writers: dict[str, str] = {}
    for sibling in sorted(Path(source).parent.glob("*.yaml")):
        if sibling.resolve() == Path(source).resolve() or not sibling.is_file() \
                or sibling.stat().st_size > MAX_SIBLING_BYTES:
            continue
        try:
            cfg = load_recipe(sibling)
        except UserError:
            continue
        for written in _written_paths(cfg):
            writers.setdefault(written, str(sibling))
    return writers


def _written_paths(cfg: DictConfig) -> list[str]:
    """The ``output`` of a recipe and of each of its pipeline steps, resolved alone."""
    steps = cfg.get("steps") if isinstance(cfg.get("steps"), ListConfig) else []
    places = ["output", *(f"steps[{i}].output" for i in range(len(steps)))]
    written = []
    for place in places:
        try:
            value = OmegaConf.select(cfg, place, default=None, throw_on_missing=False)
        except OmegaConfBaseException:
            continue
        if isinstance(value, (str, Path)) and value:
            written.append(_canonical(value))
    return written


def validate_task_body(container: dict, where: str, result: Validation,
                       registry: "Registry") -> None:
    """Validate one task's recipe body (``task:`` plus its fields) into ``result``.

    Then the task's ``validate_extra`` (see ``lcm.interfaces.Task``).
    """
    label = f"{where}.task" if where else "task"
    task_name = container.get("task")
    if not task_name:
        result.problems.append(f"{label}: required field is missing")
        return
    try:
        info = registry.get("task", str(task_name))
    except UnknownComponentError as exc:
        result.problems.append(f"{label}: {exc}")
        return
    overwrite = container.get("overwrite", False)
    if not isinstance(overwrite, bool):
        result.problems.append(f"{where + '.' if where else ''}overwrite: expected true or false, "
                               f"got {overwrite!r}")
    body = with_section_defaults(info.cls, {k: v for k, v in container.items()
                                            if k not in RESERVED_KEYS})
    validate_section(info.cls.Config, body, where, result, registry)
    info.cls.validate_extra(body, registry, result, where)


def typed_config(task_cls: type, body: dict, registry: "Registry") -> Any:
    """A validated recipe body as an instance of the task's ``Config``, every component
    section resolved to its (class, typed options)."""
    body = with_section_defaults(task_cls,
                                 {k: v for k, v in body.items() if k not in RESERVED_KEYS})
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(task_cls.Config), body))
    return resolve_sections(config, registry)


def with_section_defaults(task_cls: type, body: dict) -> dict:
    """``body`` with the task's ``section_defaults`` laid under its component sections."""
    for name, defaults in task_cls.section_defaults(body).items():
        if defaults:
            body = {**body, name: {**defaults, **dict(body.get(name) or {})}}
    return body


def resolve_recipe(source: str | Path, overrides: list[str] | tuple[str, ...], registry: "Registry",
                   planning: bool = False) -> ResolvedRecipe:
    """Load, validate (all problems at once) and type a recipe; raise RecipeError if wrong.

    An input missing because an earlier recipe of its folder has not run yet names that recipe;
    ``planning`` (``--dump-config``) accepts such inputs, since nothing is run.
    """
    cfg = load_recipe(source, overrides)
    result = validate_recipe(cfg, registry, str(source))
    if result.problems:
        writers = sibling_writers(source, registry)
        result = validate_recipe(cfg, registry, str(source), set(writers) if planning else None,
                                 writers)
    if result.problems:
        raise located_error(source, result.problems, overrides)
    container = OmegaConf.to_container(cfg, resolve=True)
    info = registry.get("task", str(container["task"]))
    return ResolvedRecipe(str(source), info.name, info.cls,
                          typed_config(info.cls, container, registry), cfg,
                          bool(container.get("overwrite", False)))


def located_error(source: str | Path, problems: list[str],
                  overrides: list[str] | tuple[str, ...] = ()) -> RecipeError:
    """The problems of a recipe, each placed at its field's line and column in the file (a
    field set by a command-line override is not placed: the file did not say it)."""
    marks = key_marks(Path(source))
    overridden = frozenset(item.split("=", 1)[0].strip() for item in overrides)
    return RecipeError(str(source), problems, [locate(p, marks, overridden) for p in problems])


def dump_config(recipe: ResolvedRecipe, registry: "Registry") -> str:
    """The resolved recipe as YAML: every default filled in, every component's options too;
    then, as comments, the model each checkpoint it reads holds, as it will run (the head's
    stored options with the recipe's ``sampling`` laid over them)."""
    data = {"task": recipe.task_name, **plain(recipe.config)}
    text = OmegaConf.to_yaml(OmegaConf.create(data))
    for label, model in _checkpoint_models(recipe.config, registry):
        listing = OmegaConf.to_yaml(OmegaConf.create(model)).splitlines()
        text += f"# {label}: the checkpoint's model\n"
        text += "".join(f"#   {line}\n" for line in listing)
    return text


def _checkpoint_models(config: Any, registry: "Registry") -> list[tuple[str, dict]]:
    """(field, {arch, transformer, head}) of each checkpoint the recipe reads."""
    found = []
    for f in fields(config):
        value = getattr(config, f.name)
        if not (f.metadata.get(META_SPACE_SOURCE) and value
                and Path(str(value), CONFIG_FILE).is_file()):
            continue
        meta = read_checkpoint_meta(value)
        head = checkpoint_head(meta, registry, value, getattr(config, "sampling", None) or {})
        found.append((f.name, {"arch": meta.get("arch"), "transformer": meta["transformer"],
                               "head": head.as_dict()}))
    return found
