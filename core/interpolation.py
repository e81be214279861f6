"""What a recipe's ``${...}`` may do: name a key, nothing else, and produce a bounded value.

Checked on the raw recipe with OmegaConf's own grammar before anything is resolved, so a
spelling cannot walk around it: any resolver call is refused however its name is built
(``${oc.env:HOME}``, ``${oc.${field}:HOME}``, ``${${vars.r}:HOME}``), and so is a key built by
interpolation (``${${vars.k}}``). A value whose interpolations would expand beyond
``MAX_RESOLVED_CHARS`` (``b: ${a}${a}``, ``c: ${b}${b}``, ... doubles per line) is refused
from its size, computed without expanding it.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

from omegaconf import grammar_parser
from omegaconf.errors import GrammarParseError
from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser as P

MAX_RESOLVED_CHARS = 100_000
"""The most characters one recipe value may resolve to (recipes share values, not build text)."""

MAX_KEY_CHARS = 1_000
"""A key built by interpolation (``${vars.${vars.k}}``) is read from values this short."""
_KEY_PART = re.compile(r"\[([^\]]*)\]|([^.\[\]]+)")


def interpolation_problems(raw: Any) -> list[str]:
    """Every value of a raw (unresolved) recipe that calls a resolver, builds a key, or would
    resolve to more than ``MAX_RESOLVED_CHARS`` characters."""
    sizes = _Sizes(raw)
    problems = []
    for where, text in _strings(raw, ()):
        tree = _parse(text)
        if tree is None:
            continue  # OmegaConf reports a malformed interpolation itself
        own = _own_problems(tree)
        problems.extend(f"{_label(where)}: {problem}" for problem in own)
        if not own and sizes.of(where) > MAX_RESOLVED_CHARS:
            problems.append(f"{_label(where)}: interpolation would produce more than "
                            f"{MAX_RESOLVED_CHARS} characters; refusing it")
    return problems


def _own_problems(tree: Any) -> list[str]:
    problems = []
    for node in _descendants(tree):
        if isinstance(node, P.InterpolationResolverContext):
            name = node.resolverName().getText()
            problems.append(f"resolver ${{{name}:...}} is not allowed in recipes (only ${{key}} "
                            f"interpolation is)")
    return problems[:1]  # the outermost says it


class _Sizes:
    """How many characters each value resolves to, computed from the references alone."""

    def __init__(self, raw: Any):
        self.raw, self.memo, self.visiting = raw, {}, set()

    def of(self, where: tuple) -> int:
        if where in self.memo:
            return self.memo[where]
        if where in self.visiting:
            return 0  # a cycle: OmegaConf refuses it when resolving
        self.visiting.add(where)
        try:
            size = self._measure(where, _get(self.raw, where))
        finally:
            self.visiting.discard(where)
        self.memo[where] = size = min(size, MAX_RESOLVED_CHARS + 1)
        return size

    def _measure(self, where: tuple, value: Any) -> int:
        if isinstance(value, dict):
            return sum(self.of((*where, key)) for key in value) + 1
        if isinstance(value, list):
            return sum(self.of((*where, index)) for index in range(len(value))) + 1
        if not isinstance(value, str) or "${" not in value:
            return len(str(value))
        tree = _parse(value)
        if tree is None:
            return len(value)
        return self._text_size(tree, where)

    def _text_size(self, tree: Any, where: tuple) -> int:
        if isinstance(tree, P.InterpolationNodeContext):
            key = self._key_text(tree, where)
            target = None if key is None else _target(key, where)
            return 0 if target is None else self.of(self._followed(target))
        if hasattr(tree, "symbol"):  # a terminal (literal text)
            return 0 if tree.getText() == "<EOF>" else len(tree.getText())
        return sum(self._text_size(child, where) for child in tree.getChildren())

    def _key_text(self, node: Any, where: tuple) -> str | None:
        """The key a ``${...}`` names, its own interpolations (``${vars.${vars.k}}``) filled
        in; None where one cannot be read without resolving more than a short key."""
        parts = []
        for child in list(_descendants(node))[1:]:
            if isinstance(child, P.InterpolationNodeContext):
                inner = self._key_text(child, where)
                target = None if inner is None else _target(inner, where)
                value = None if target is None else _get(self.raw, self._followed(target))
                if not isinstance(value, (str, int, float, bool)) or "${" in str(value) \
                        or len(str(value)) > MAX_KEY_CHARS:
                    return None
                parts.append(str(value))
            elif hasattr(child, "symbol") and not _inside_interpolation(child, node):
                parts.append(child.getText())
        text = "".join(parts)
        return text[2:-1] if text.startswith("${") and text.endswith("}") else None

    def _followed(self, target: tuple) -> tuple:
        """``target`` with each prefix that is itself a ``${key}`` alias replaced by its key."""
        for cut in range(1, len(target)):
            value = _get(self.raw, target[:cut])
            alias = _alias(value)
            if alias is not None:
                resolved = _target(alias, target[:cut])
                if resolved is not None and resolved != target[:cut]:
                    return self._followed((*resolved, *target[cut:]))
        return target


def _inside_interpolation(node: Any, outer: Any) -> bool:
    """Whether ``node`` lies in an interpolation nested in ``outer`` (not ``outer``'s own)."""
    parent = node.parentCtx
    while parent is not None and parent is not outer:
        if isinstance(parent, P.InterpolationNodeContext):
            return True
        parent = parent.parentCtx
    return False


def _alias(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("${") and value.endswith("}") \
            and value.count("${") == 1:
        return value[2:-1]
    return None


def _target(key: str, where: tuple) -> tuple | None:
    """The absolute place a ``${key}`` written at ``where`` names (``.x``: a sibling)."""
    dots = len(key) - len(key.lstrip("."))
    if dots:
        base = where[:max(len(where) - dots, 0)]
        key = key[dots:]
    else:
        base = ()
    parts: list[Any] = []
    for bracket, plain in _KEY_PART.findall(key):
        part = bracket if bracket else plain
        parts.append(int(part) if part.isdigit() else part)
    return (*base, *parts) if parts else None


def _get(raw: Any, where: tuple) -> Any:
    node = raw
    for part in where:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            return None
    return node


def _strings(node: Any, where: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*where, index))
    elif isinstance(node, str) and "${" in node:
        yield where, node


def _parse(text: str) -> Any:
    try:
        return grammar_parser.parse(text)
    except GrammarParseError:
        return None


def _descendants(node: Any) -> Iterator[Any]:
    yield node
    for child in getattr(node, "getChildren", lambda: ())():
        yield from _descendants(child)


def _label(where: tuple) -> str:
    label = ""
    for part in where:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
    return label
