"""The plugin manager: loads the ``lcm`` entry-point group and keeps the component registry.

Built-in plugins register through the same entry points as third-party ones. A plugin that
fails to import (or whose hook raises, or calls ``sys.exit``), registers a taken name, or breaks
the component contract is recorded with its error and breaks nothing else.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from lcm import hookspecs
from lcm.components import resolve
from lcm.errors import DuplicateComponentError, UnknownComponentError
from lcm.interfaces import COMPONENT_KINDS, Component, ConceptSpace
from lcm.plugin_origin import ENTRY_POINT_GROUP

_HOOK_FOR_KIND = {
    "encoder": "register_encoders",
    "decoder": "register_decoders",
    "head": "register_heads",
    "task": "register_tasks",
}


@dataclass(frozen=True)
class ComponentInfo:
    """One registered component and where it comes from."""

    kind: str
    name: str
    cls: type
    module: str
    distribution: str
    version: str

    def as_dict(self, space: ConceptSpace | None) -> dict[str, Any]:
        """What ``lcm plugins list`` shows, with the component's ``space`` (see Registry)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "space": space.name if space else None,
            "dim": space.dim if space else None,
            "modalities": list(self.cls.modalities),
            "description": self.cls.description,
        }


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, with its error."""

    plugin: str
    module: str
    distribution: str
    version: str
    error: str


@dataclass
class Registry:
    """Every component by kind and name, plus the plugins that failed to load."""

    components: dict[str, dict[str, ComponentInfo]] = field(
        default_factory=lambda: {k: {} for k in COMPONENT_KINDS}
    )
    failures: list[PluginFailure] = field(default_factory=list)

    def add(self, info: ComponentInfo) -> None:
        known = self.components[info.kind]
        if info.name in known:
            raise DuplicateComponentError(info.kind, info.name, known[info.name].module, info.module)
        known[info.name] = info

    def get(self, kind: str, name: str) -> ComponentInfo:
        try:
            return self.components[kind][name]
        except KeyError:
            failed = tuple((f.distribution, f.error) for f in self.failures)
            raise UnknownComponentError(kind, name, list(self.components.get(kind, {})),
                                        failed) from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def all(self) -> list[ComponentInfo]:
        return [info for kind in COMPONENT_KINDS for _, info in sorted(self.components[kind].items())]

    def create(self, kind: str, spec: Any) -> Any:
        """Instantiate a component from a recipe section ``{name: ..., **options}``."""
        return resolve(self, kind, spec).create()

    def space_of(self, info: ComponentInfo) -> ConceptSpace | None:
        """The concept space of a component with its default options."""
        try:
            spec = resolve(self, info.kind, {"name": info.name})
            return spec.cls.concept_space(spec.options)
        except Exception:  # a space that needs options the defaults lack
            return None

    def describe(self, info: ComponentInfo) -> dict[str, Any]:
        return info.as_dict(self.space_of(info))


def _plugin_origin(module: str, entry_point: md.EntryPoint | None) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None) if entry_point else None
    if dist is not None:
        return dist.metadata["Name"], dist.version
    return module.split(".")[0], "unknown"


def build_registry(entry_points: Iterable[md.EntryPoint] | None = None,
                   extra_plugins: Iterable[object] = ()) -> Registry:
    """Load every plugin of the ``lcm`` entry-point group (plus ``extra_plugins``, for tests)."""
    pm = pluggy.PluginManager("lcm")
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    origins: dict[str, tuple[str, str]] = {}
    eps = md.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
    for ep in eps:
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.value)
            origins[ep.value] = _plugin_origin(ep.value, ep)
        except (Exception, SystemExit) as exc:  # a broken plugin must not break the others
            dist, version = _plugin_origin(ep.value, ep)
            registry.failures.append(PluginFailure(ep.name, ep.value, dist, version, _describe(exc)))
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", repr(plugin))
        pm.register(plugin, name=name)
        origins[name] = _plugin_origin(name, None)
    _drop_plugins_with_unknown_hooks(pm, registry, origins)

    for kind, hook_name in _HOOK_FOR_KIND.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            dist, version = origins.get(impl.plugin_name, ("unknown", "unknown"))

            def register(cls: type, _kind=kind, _module=impl.plugin_name, _d=dist, _v=version) -> None:
                _check_component(cls, _kind, _module)
                try:
                    registry.add(ComponentInfo(_kind, cls.name, cls, _module, _d, _v))
                except DuplicateComponentError as exc:  # the first keeps the name
                    registry.failures.append(PluginFailure(_module, _module, _d, _v,
                                                           f"{exc}; the second is ignored"))

            try:
                impl.function(register)
            except (Exception, SystemExit) as exc:
                registry.failures.append(
                    PluginFailure(impl.plugin_name, impl.plugin_name, dist, version, _describe(exc))
                )
    return registry


def _drop_plugins_with_unknown_hooks(pm: pluggy.PluginManager, registry: Registry,
                                     origins: dict[str, tuple[str, str]]) -> None:
    """A hook implementation with a typo fails loudly (as in pytest), but only its plugin."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            pm.unregister(exc.plugin)
            dist, version = origins.get(name, ("unknown", "unknown"))
            error = str(exc).splitlines()[0]
            registry.failures.append(PluginFailure(name, name, dist, version, f"{error} (no such hook)"))


def _check_component(cls: type, kind: str, module: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Component) and cls.kind == kind):
        raise TypeError(f"{module} registered {cls!r} as a {kind}, but it is not one")
    if not getattr(cls, "name", None):
        raise TypeError(f"{module} registered {cls.__name__} without a name")
    if not isinstance(inspect.getattr_static(cls, "concept_space"), classmethod):
        raise TypeError(f"{module} registered {cls.__name__}, whose concept_space is not a "
                        f"classmethod (concept_space(cls, config) -> ConceptSpace | None)")
    if not (isinstance(cls.Config, type) and dataclasses.is_dataclass(cls.Config)):
        raise TypeError(f"{module} registered {cls.__name__}, whose Config is not a dataclass")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: the plugin called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    return build_registry()
