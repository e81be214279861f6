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
    for path in sorted(tests.glob("*.py")):  # test modules, helpers and conftest alike
        for node in ast.walk(ast.parse(path.read_text())):
            base = "." * node.level + (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            names = ([base] + [f"{base}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.name}: {n}" for n in names
                          if n.startswith(("tests.test_", ".test_", "..test_"))]
    assert offenders == []


def _function_level_imports(path: Path) -> list[tuple[int, list[str]]]:
    """(line, the lines just above it) of each import inside a function of ``path``."""
    text = path.read_text()
    lines = text.splitlines()
    found = {}
    for fn in ast.walk(ast.parse(text)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found[node.lineno] = lines[max(0, node.lineno - 5):node.lineno]
    return sorted(found.items())


def test_every_import_inside_a_function_says_why_it_is_there():
    """An import belongs at the top of its module; one inside a function keeps ``lcm plugins
    list`` and ``lcm recipes validate`` fast (or must wait for a setting), and says so in a
    comment on it or on the lines just above it (its group's, or its ``try:``/``with``)."""
    unexplained = []
    for name, path in modules().items():
        for line, above in _function_level_imports(path):
            block = []
            for text in reversed(above):  # the import itself, then upwards while imports/try
                block.append(text)
                if not text.strip().startswith(("import ", "from ", "try:", "with ", "if ")):
                    break
            if not any("#" in text for text in block):
                unexplained.append(f"{path.relative_to(REPO)}:{line}")
    assert unexplained == []


def test_no_two_modules_define_a_class_of_one_name():
    """One word, one thing: two classes of one name (``_Window`` of the data and of the
    trainer) make a reader ask which one is meant."""
    owners: dict[str, list[str]] = {}
    for name, path in modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                owners.setdefault(node.name, []).append(name)
    assert {cls: where for cls, where in owners.items() if len(where) > 1} == {}


def test_one_word_one_thing_in_the_model_the_terminal_and_training():
    """``model.trunk`` is the Transformer and a head is handed the model's ``backbone`` (no
    module of its own, so checkpoints keep their ``trunk.*`` weights); the run's closing line
    is its outcome (``summary`` is the summarize task's word); no untyped registry."""
    from torch import nn

    from lcm.model.transformer import ConceptTransformer
    from lcm.ui import Terminal
    from tests._model_fixtures import toy_model

    model = toy_model(seed=0)
    assert isinstance(model.trunk, ConceptTransformer)
    assert not isinstance(model.backbone, nn.Module) and model.backbone.config is model.config
    assert {key.split(".")[0] for key in model.state_dict()} == {"prenet", "trunk", "head"}
    assert hasattr(Terminal, "outcome") and not hasattr(Terminal, "summary")
    texts = {name: path.read_text() for name, path in modules().items()}
    assert [name for name, text in texts.items()
            if "trunk_view" in text or "registry: Any" in text or "TrainingSummary" in text] == []


def test_the_head_contract_is_one_module():
    """A plugin author reads ``lcm.interfaces``: the head's methods, what it is handed and
    returns, and the generation state; ``lcm.model.heads`` re-exports, never redefines."""
    from lcm import interfaces
    from lcm.model import heads

    for name in ("Backbone", "GenerationState", "Head", "LossOutput"):
        assert getattr(heads, name) is getattr(interfaces, name), name
    assert {"loss", "start", "next_concept", "append", "keep_rows"} <= set(vars(interfaces.Head))


def test_the_tasks_folder_holds_tasks_only():
    """Helpers that serve and plugins share (continuation, decoded text, document input) live
    below the tasks; every module in ``lcm.tasks`` defines a task."""
    from lcm.interfaces import Task

    known = modules()
    for name in known:
        if name.startswith("lcm.tasks.") and name != "lcm.tasks.builtin":
            module = __import__(name, fromlist=["_"])
            tasks = [v for v in vars(module).values() if isinstance(v, type)
                     and issubclass(v, Task) and v.__module__ == name]
            assert tasks, f"{name} defines no task"


def test_choosing_summary_sentences_lives_in_the_selector():
    """Done when: choosing summary sentences differently means editing the selector and at
    most one decoder module. Outside ``lcm.pipeline.selector`` no module of the request path
    defines a choosing function or knows a decoder by its name or options, and only the
    decoder plugins (besides the pipeline, tasks and serve, which call it) use the selector."""
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    choosing = {"nearest", "rerank", "choose", "in_order", "trace_sources", "decoder_choices"}
    path_modules = [n for n in known if n.startswith(("lcm.pipeline", "lcm.tasks", "lcm.serve",
                                                      "lcm.generate"))
                    and n != "lcm.pipeline.selector"]
    knowing = []
    for name in path_modules:
        tree = ast.parse(known[name].read_text())
        knowing += [f"{name}.{n.name}" for n in tree.body
                    if isinstance(n, ast.FunctionDef) and n.name in choosing]
        knowing += [f"{name}: .hybrid" for n in ast.walk(tree)
                    if isinstance(n, ast.Attribute) and n.attr == "hybrid"]
        knowing += [f"{name}: compares with 'retrieval'" for n in ast.walk(tree)
                    if isinstance(n, ast.Compare) and any(
                        isinstance(c, ast.Constant) and c.value == "retrieval"
                        for c in [n.left, *n.comparators])]
    assert knowing == []
    users = sorted(n for n, found in graph.items() if "lcm.pipeline.selector" in found
                   and not n.startswith(("lcm.pipeline", "lcm.tasks", "lcm.serve")))
    assert all(n.startswith("lcm.plugins.decoders.") or n == "lcm.plugins.learned.decoder"
               for n in users), users


def test_one_training_loop_owns_run_step_log_checkpoint_and_resume():
    """Done when: the decoder's trainer holds no run/step/log/checkpoint/resume code. The
    engine's steps, checkpoints and logs are written in ``lcm.train`` only, and ``resume`` is
    decoded by one parser (``Resume.parse``)."""
    assert not (REPO / "plugins" / "learned" / "trainer.py").exists()
    owners = {"engine.backward(": {"lcm.train.loop"}, "engine.step(": {"lcm.train.loop"},
              "engine.save_checkpoint(": {"lcm.train.checkpointing"},
              "engine.load_checkpoint(": {"lcm.train.checkpointing"},
              "TrainingLog(": {"lcm.train.loop"},
              "Resume.parse(": {"lcm.train.options", "lcm.tasks.train"}}
    texts = {name: path.read_text() for name, path in modules().items()}
    found = {call: {name for name, text in texts.items() if call in text} for call in owners}
    assert found == owners
