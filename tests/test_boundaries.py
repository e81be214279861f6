"""The boundaries DESIGN.md draws, checked on the source: no global registry below the CLI,
a model layer that knows neither recipes nor the registry, and no import cycles."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"lcm": REPO / "core", "lcm.plugins": REPO / "plugins"}
REGISTRY_OWNERS = {"lcm.cli", "lcm.registry"}


def modules() -> dict[str, Path]:
    """Every module of the lcm package (core and the built-in plugins) by dotted name."""
    found = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The lcm modules ``name`` imports, at the top or inside functions."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def test_no_module_below_the_cli_looks_up_the_global_registry():
    users = [name for name, path in modules().items()
             if name not in REGISTRY_OWNERS and "get_registry" in path.read_text()]
    assert users == []


def test_the_model_layer_imports_neither_recipes_nor_the_registry():
    known = modules()
    for name, path in known.items():
        if name.startswith("lcm.model"):
            assert not imports(name, path, known) & {"lcm.config", "lcm.registry"}, name


def test_there_are_no_import_cycles():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in graph[name]:
            assert state.get(target) != "open", " -> ".join(trail + [name, target])
            if target not in state:
                visit(target, trail + [name])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [])
