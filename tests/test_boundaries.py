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


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (imports for type hints
    only, which never run)."""
    skipped = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
               and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
               for stmt in block.body for n in ast.walk(stmt)}
    return [n for n in ast.walk(tree) if id(n) not in skipped]


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The lcm modules ``name`` imports when it runs, at the top or inside functions."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text())):
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


def _reached_from(starts: list[str], graph: dict[str, set[str]]) -> set[str]:
    """Every module ``starts`` import, directly or through others."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def test_serve_and_the_plugins_import_nothing_from_the_tasks():
    """Tasks are shells around the concept pipeline: what serve and plugins share lives below."""
    known = modules()
    users = {name: sorted(m for m in imports(name, path, known) if m.startswith("lcm.tasks"))
             for name, path in known.items()
             if name.startswith(("lcm.serve", "lcm.plugins"))}
    assert {name: found for name, found in users.items() if found} == {}
    texts = [path for name, path in known.items() if name.startswith(("lcm.serve", "lcm.plugins"))]
    assert [p for p in texts if "from lcm.tasks" in p.read_text()] == []


def test_the_learned_decoder_gets_its_retrieval_through_a_recipe_section():
    """The hybrid's retrieval decoder is a component the recipe names (``retrieval:``), not a
    class the learned plugin imports, nor options it mirrors."""
    from lcm.plugins.learned.decoder import LearnedConfig

    known = modules()
    learned = [name for name in known if name.startswith("lcm.plugins.learned")]
    crossing = {name: sorted(m for m in imports(name, known[name], known)
                             if m.startswith("lcm.plugins.") and not m.startswith("lcm.plugins.learned"))
                for name in learned}
    assert {name: found for name, found in crossing.items() if found} == {}
    assert not {"bank", "observed", "distinct"} & set(LearnedConfig.__dataclass_fields__)


def test_a_web_request_never_enters_the_tasks():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    reached = _reached_from([n for n in known if n.startswith("lcm.serve")], graph)
    assert "lcm.pipeline.pipeline" in reached  # the request path is the pipeline's
    assert sorted(m for m in reached if m.startswith("lcm.tasks")) == []


def test_generation_takes_concepts_in_the_encoders_space_only():
    """No caller de-normalises by hand: the loop takes the pipeline's normaliser, not a
    ``denormalize`` callable, and nothing outside the pipeline and the loop normalises."""
    import inspect

    from lcm.generate.loop import generate

    assert "denormalize" not in inspect.signature(generate).parameters
    by_hand = [name for name, path in modules().items()
               if name.startswith(("lcm.tasks", "lcm.serve", "lcm.pipeline"))
               and ("normalizer.normalize(" in path.read_text()
                    or "normalizer.denormalize" in path.read_text())]
    assert by_hand == []


def test_no_test_module_imports_another():
    """What test modules share lives in tests/_*.py helpers or conftest.py fixtures, so a test
    module can change (or be deleted) without breaking another."""
    tests = REPO / "tests"
    offenders = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("tests.test_")]
    assert offenders == []
