"""Which installed distribution provides a component class: what lcm records in what it saves
(a checkpoint's ``plugins``), so that a loader can name the plugin package that is missing.

Read from package metadata only, so the model layer can use it without the registry.
"""
from __future__ import annotations

import importlib.metadata as md

ENTRY_POINT_GROUP = "lcm"
"""The entry-point group plugins register under."""


def distribution_of(cls: type) -> str | None:
    """The installed distribution that provides ``cls``, recorded in what lcm saves so that a
    missing plugin can be named later: the distribution whose ``lcm`` entry point names the
    class's module or a package above it (as the registry reports it), else the one that
    installs the module's top-level package."""
    module = cls.__module__
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        if module == ep.value or module.startswith(ep.value + "."):
            dist = getattr(ep, "dist", None)
            if dist is not None:
                return dist.metadata["Name"]
    names = md.packages_distributions().get(module.split(".")[0])
    return names[0] if names else None
