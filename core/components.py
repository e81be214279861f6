"""Recipe sections resolved once into (component class, typed options).

A ``component()`` field of a recipe holds ``{name: ..., **options}``. After validation every
such section, nested ones included (a cascade's ``text_encoder``), becomes a ``ComponentSpec``:
the registered class and an instance of its ``Config`` with every default filled in. Tasks
create components from it, ``--dump-config`` prints it whole, checkpoints store it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Mapping

from omegaconf import DictConfig, OmegaConf

from lcm.errors import UserError
from lcm.fields import META_COMPONENT, META_REQUIRES, missing_capability, require_valid

if TYPE_CHECKING:
    from lcm.registry import Registry


@dataclass(frozen=True)
class ComponentSpec:
    """A registered component class and its resolved options."""

    cls: type
    options: Any  # an instance of cls.Config

    @property
    def name(self) -> str:
        return self.cls.name

    def create(self) -> Any:
        """A new instance of the component (weights still load lazily)."""
        return self.cls(self.options)

    def as_dict(self) -> dict[str, Any]:
        """``{name: ..., **every option}``: what a recipe section would spell out in full."""
        return {"name": self.name, **plain(self.options)}


def component_options(cls: type, options: Any, registry: "Registry | None" = None) -> Any:
    """A component's options dataclass from a recipe mapping, its constraints checked and
    its own component sections resolved (with ``registry``, where it has any)."""
    if not (is_dataclass(options) and not isinstance(options, type)):
        if isinstance(options, DictConfig):
            options = OmegaConf.to_container(options, resolve=True)
        merged = OmegaConf.merge(OmegaConf.structured(cls.Config), dict(options or {}))
        options = OmegaConf.to_object(merged)
    if registry is not None:
        options = resolve_sections(options, registry)
    return require_valid(options, f"{cls.kind} {cls.name!r}")


def resolve(registry: "Registry", kind: str, spec: Any) -> ComponentSpec:
    """The section ``{name: ..., **options}`` (or an already resolved one) of a ``kind``."""
    if isinstance(spec, ComponentSpec):
        return spec
    if isinstance(spec, DictConfig):
        spec = OmegaConf.to_container(spec, resolve=True)
    options = dict(spec)
    info = registry.get(kind, str(options.pop("name")))
    return ComponentSpec(info.cls, component_options(info.cls, options, registry))


def resolve_sections(config: Any, registry: "Registry") -> Any:
    """``config`` (a dataclass instance) with every ``component()`` section, at any depth,
    replaced by its ComponentSpec, so a ``ComponentSection`` field holds one (or None)."""
    changes = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if META_COMPONENT in f.metadata and isinstance(value, (Mapping, DictConfig)):
            spec = resolve(registry, f.metadata[META_COMPONENT], value)
            lacking = missing_capability(spec.cls, f.metadata.get(META_REQUIRES))
            if lacking:
                raise UserError(f"{f.name}: {lacking}")
            changes[f.name] = spec
        elif META_COMPONENT in f.metadata and not isinstance(value, (ComponentSpec, type(None))):
            raise UserError(f"{f.name}: expected a section {{name: ...}} of a "
                            f"{f.metadata[META_COMPONENT]} plugin, got {value!r}")
        elif is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = resolve_sections(value, registry)
    return dataclasses.replace(config, **changes) if changes else config


def plain(value: Any) -> Any:
    """``value`` as plain data (dicts, lists, scalars), component sections spelled out."""
    if isinstance(value, ComponentSpec):
        return value.as_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
