"""Where each key of a recipe file is written (line and column), so that a problem with a field
is reported as ``file:line:column:`` like a compiler's, and an editor can jump to it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml

Mark = tuple[int, int]
"""1-based (line, column), as editors count."""


def key_marks(source: Path) -> dict[str, Mark]:
    """Every key path of the YAML file (``encoder.batch_size``, ``steps[1].train.steps``) with
    the place its key (or list item) starts; empty when the file does not parse."""
    try:
        root = yaml.compose(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    marks: dict[str, Mark] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = f"{prefix}.{key.value}" if prefix else str(key.value)
                marks[path] = (key.start_mark.line + 1, key.start_mark.column + 1)
                walk(value, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                path = f"{prefix}[{index}]"
                marks[path] = (item.start_mark.line + 1, item.start_mark.column + 1)
                walk(item, path)

    walk(root, "")
    return marks


def locate(problem: str, marks: dict[str, Mark], overridden: frozenset[str] = frozenset()
           ) -> Optional[Mark]:
    """The place of the field a problem (``label: message``) names, or of the nearest enclosing
    one the file holds; None for a field set on the command line or not in the file."""
    label = problem.split(": ", 1)[0]
    if any(label == key or label.startswith(f"{key}.") for key in overridden):
        return None
    while label:
        if label in marks:
            return marks[label]
        label = label[:max(label.rfind("."), label.rfind("["), 0)]
    return None
