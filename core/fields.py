"""Declaring the fields of options dataclasses, and checking what they declare.

``component()``, ``path()``, ``choice()`` and ``bounded()`` put their constraints in a field's
metadata; ``problems_of`` checks an options instance against them (and against its own
``problems()``, for checks that span fields). Recipe validation (``lcm.config``) reports the
same problems for a recipe, all at once. Plain dataclasses only: the model layer uses it too.
"""
from __future__ import annotations

import dataclasses
from dataclasses import MISSING, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Callable

from lcm.errors import UserError

if TYPE_CHECKING:
    from typing import TypeAlias

    from lcm.components import ComponentSpec

    ComponentSection: TypeAlias = ComponentSpec
else:
    ComponentSection = Any
"""The type of a ``component()`` field: a ``ComponentSpec`` in every validated recipe (what
tasks and type checkers see). OmegaConf schemas take no arbitrary class as a field type, so
at run time it is ``Any``: the schema holds the recipe's ``{name: ..., **options}`` mapping,
which ``lcm.components.resolve_sections`` turns into the spec (refusing anything else)."""

# Field metadata keys.
META_COMPONENT = "lcm_component"
META_PATH = "lcm_path"
META_CHOICES = "lcm_choices"
META_SPACE_SOURCE = "lcm_space_source"
META_OUTPUT = "lcm_output"
META_RANGE = "lcm_range"
META_REQUIRES = "lcm_requires"


def component(kind: str, default: str | None = None, help: str = "",
              requires: type | None = None) -> Any:
    """A recipe section naming a plugin of ``kind``: ``{name: ..., **its options}``; declare
    the field as ``ComponentSection`` (``Optional[...]`` without a default).

    ``requires``: a capability (a runtime-checkable Protocol, e.g. ``TokenLikelihood``) the
    named component's class must offer; validation refuses one that lacks it.
    """
    factory: Callable[[], Any] = (lambda: {"name": default}) if default else (lambda: None)
    return field(default_factory=factory, metadata={META_COMPONENT: kind, "help": help,
                                                    META_REQUIRES: requires})


def missing_capability(cls: type, requires: type | None) -> str | None:
    """Why component class ``cls`` cannot serve where ``requires`` is needed (None: it can)."""
    if requires is None or issubclass(cls, requires):
        return None
    summary = (requires.__doc__ or "").strip().splitlines()[0].rstrip(".:")
    return f"{cls.kind} {cls.name!r} lacks {requires.__name__} ({summary[0].lower() + summary[1:]})"


def path(default: Any = MISSING, *, must_exist: bool = False, space_source: bool = False,
         output: bool | str = False, help: str = "") -> Any:
    """A filesystem path; ``must_exist`` is checked at validation time.

    ``space_source``: the path holds data of a concept space (shards, a checkpoint) recorded
    in its ``concept_space.json``; validation checks it against the recipe's components.
    ``output``: the task writes this path (True: a file, ``"dir"``: a folder of files), so a
    later step of a pipeline may read it before it exists; ``lcm.outputs`` guards and locks it.
    """
    return field(default=default, metadata={META_PATH: must_exist, META_SPACE_SOURCE: space_source,
                                            META_OUTPUT: output, "help": help})


def output_kind(f: dataclasses.Field) -> str | None:
    """``"file"`` or ``"dir"`` for an output field, None for any other."""
    output = f.metadata.get(META_OUTPUT)
    return None if not output else "dir" if output == "dir" else "file"


def choice(default: Any, choices: tuple[Any, ...], help: str = "") -> Any:
    """A value restricted to ``choices`` (OmegaConf has no Literal)."""
    return field(default=default, metadata={META_CHOICES: choices, "help": help})


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, help: str = "") -> Any:
    """A number restricted to a range; validation reports every value outside it."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    return field(default=default, metadata={META_RANGE: bounds, "help": help})


_COMPARE = {"ge": (lambda v, b: v >= b, "at least"), "gt": (lambda v, b: v > b, "greater than"),
            "le": (lambda v, b: v <= b, "at most"), "lt": (lambda v, b: v < b, "less than")}


def field_problems(f: dataclasses.Field, value: Any) -> list[str]:
    """What breaks the constraints declared on field ``f`` (its choices, its range)."""
    found = []
    if META_CHOICES in f.metadata and value not in f.metadata[META_CHOICES]:
        found.append(f"{value!r} is not one of {', '.join(map(str, f.metadata[META_CHOICES]))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for kind, bound in f.metadata.get(META_RANGE, {}).items():
            holds, words = _COMPARE[kind]
            if not holds(value, bound):
                found.append(f"must be {words} {bound}, got {value}")
    return found


def problems_of(options: Any, where: str = "") -> list[str]:
    """Every declared constraint an options dataclass breaks, its nested sections included:
    each field's choices and range, then the dataclass's own ``problems()`` (checks that
    span fields). What validation reports for a recipe, for options built in code."""
    found = []
    for f in fields(options):
        label = f"{where}.{f.name}" if where else f.name
        value = getattr(options, f.name)
        if is_dataclass(value) and not isinstance(value, type):
            found.extend(problems_of(value, label))
        else:
            found.extend(f"{label}: {problem}" for problem in field_problems(f, value))
    return found + own_problems(options, where)


def own_problems(options: Any, where: str) -> list[str]:
    check = getattr(options, "problems", None)
    return [f"{where}: {p}" if where else p for p in (check() if check else [])]


def require_valid(options: Any, what: str) -> Any:
    """``options`` if it breaks no declared constraint, else a UserError listing all."""
    found = problems_of(options)
    if found:
        raise UserError(f"{what}: {'; '.join(found)}")
    return options
