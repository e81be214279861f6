"""The generated parts of the docs site: every task's and component's options, read from the
options dataclasses the recipe validator itself uses, so the pages cannot drift from the code.

A page holds a marker line ``<!-- generated: tasks -->`` (or ``heads``, ``encoders``,
``decoders``); the MkDocs hook ``on_page_markdown`` replaces it with the tables. Run as a script
(``python scripts/docs_reference.py tasks``) it prints the same Markdown.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import sys
import textwrap
import typing
from typing import Any

MARKER = re.compile(r"^<!-- generated: (tasks|encoders|decoders|heads) -->$", re.MULTILINE)
KINDS = {"tasks": "task", "encoders": "encoder", "decoders": "decoder", "heads": "head"}


@functools.lru_cache(maxsize=None)
def attribute_docs(cls: type) -> dict[str, str]:
    """The string literal written under each field of a dataclass (``field: int = 1`` then
    ``\"\"\"doc\"\"\"``), the convention lcm's options classes use."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation).replace("typing.", "")
    if text.startswith("Optional[") and text.endswith("]"):
        return "optional " + text[len("Optional["):-1]
    return text


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(value):
            return "(section)"
    else:
        return "**required**"
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return f"`{text}`" if len(text) < 60 else f"`{text[:57]}...`"


def _constraints(f: dataclasses.Field) -> str:
    from lcm.fields import META_CHOICES, META_COMPONENT, META_PATH, META_RANGE

    parts = []
    if META_COMPONENT in f.metadata:
        parts.append(f"a section `{{name: <{f.metadata[META_COMPONENT]}>, ...its options}}`")
    if f.metadata.get(META_CHOICES):
        parts.append("one of " + ", ".join(f"`{c}`" for c in f.metadata[META_CHOICES]))
    if f.metadata.get(META_RANGE):
        words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
        parts.append(" ".join(f"{words[k]} {v}" for k, v in f.metadata[META_RANGE].items()))
    if f.metadata.get(META_PATH):
        parts.append("must exist")
    return "; ".join(parts)


def option_rows(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) of every option of ``cls``, nested sections
    spelled out as ``section.key``."""
    rows = []
    hints = typing.get_type_hints(cls)
    docs = attribute_docs(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        kind = hints.get(f.name, f.type)
        nested = kind if isinstance(kind, type) and dataclasses.is_dataclass(kind) else None
        text = " ".join((f.metadata.get("help") or docs.get(f.name) or "").split())
        extra = _constraints(f)
        description = "; ".join(p for p in (text.rstrip(".").replace("|", "\\|"), extra) if p)
        if nested is not None:
            rows.append((key, "section", "", description))
            rows.extend(option_rows(nested, key + "."))
        else:
            rows.append((key, _type_name(kind).replace("|", "\\|"), _default(f), description))
    return rows


def component_table(cls: type) -> str:
    rows = option_rows(cls.Config)
    if not rows:
        return "No options.\n"
    lines = ["| option | type | default | what it does |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text in rows]
    return "\n".join(lines) + "\n"


def reference(section: str) -> str:
    """The Markdown of one generated section: each registered component of a kind, its module
    and options."""
    from lcm.registry import get_registry

    registry = get_registry()
    kind = KINDS[section]
    parts = []
    for info in registry.all():
        if info.kind != kind:
            continue
        text = info.cls.description.rstrip(".")
        what = f"{text[:1].upper()}{text[1:]}. " if text else ""
        where = f"`{info.module}`, distribution `{info.distribution}`"
        header = f"### `{info.name}`\n\n{what}Registered by {where}. "
        header += ("Recipe: `task: " + info.name + "`.\n\n" if kind == "task"
                   else f"Section: `{{name: {info.name}, ...}}`.\n\n")
        parts.append(header + component_table(info.cls))
    return "\n".join(parts)


def expand(markdown: str) -> str:
    return MARKER.sub(lambda m: reference(m.group(1)), markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: fill the generated sections of a page."""
    return expand(markdown)


if __name__ == "__main__":
    print(reference(sys.argv[1] if len(sys.argv) > 1 else "tasks"))
