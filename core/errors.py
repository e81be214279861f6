"""Typed errors of the library.

The library raises these; only the CLI turns them into one line and an exit code
(2 for a user's mistake, 1 for a failure while running), in the style of fairseq2's recipe CLI.
"""
from __future__ import annotations


class LcmError(Exception):
    """Base of every error lcm raises on purpose."""

    exit_code = 1


class UserError(LcmError):
    """The user's input is wrong: a recipe, a file, a value. Exit code 2."""

    exit_code = 2


class RecipeError(UserError):
    """A recipe has problems; holds all of them so they are reported at once. ``marks`` (line,
    column per problem, or None) place them: ``file:3:1: first; 7:5: second; third``."""

    def __init__(self, source: str, problems: list[str],
                 marks: list[tuple[int, int] | None] | None = None):
        self.source = source
        self.problems = list(problems)
        places = marks or [None] * len(self.problems)
        lines = "; ".join(f"{mark[0]}:{mark[1]}: {problem}" if mark else problem
                          for problem, mark in zip(self.problems, places))
        super().__init__(f"{source}{':' if places and places[0] else ': '}{lines}")


class UnknownComponentError(UserError):
    """A recipe names a plugin that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str],
                 failed: tuple[tuple[str, str], ...] = ()):
        """``failed``: (package, error) of each plugin that did not load: it may be the one
        that registers ``name``, which is often why a name is unknown."""
        self.kind, self.name, self.known = kind, name, sorted(known)
        hints = "".join(f" (plugin package {package} failed to load: {error})"
                        for package, error in failed)
        super().__init__(
            f"unknown {kind} {name!r}; known {kind}s: {', '.join(self.known) or '(none)'}{hints}"
        )


class PluginNotInstalledError(UnknownComponentError):
    """A checkpoint names a component whose plugin package is not installed (any more)."""

    def __init__(self, kind: str, name: str, package: str, checkpoint: str):
        self.kind, self.name, self.known = kind, name, []
        self.package, self.checkpoint = package, checkpoint
        UserError.__init__(self, f"{checkpoint}: {kind} {name!r} is not installed: the checkpoint "
                                 f"was trained with plugin package {package} (pip install it)")


class DuplicateComponentError(LcmError):
    """Two plugins registered a component of the same kind under one name."""

    def __init__(self, kind: str, name: str, first: str, second: str):
        self.kind, self.name = kind, name
        super().__init__(f"{kind} {name!r} is registered twice: by {first} and by {second}")


class InputFileError(UserError):
    """An input file is missing, unreadable or malformed; the message names the file."""

    def __init__(self, path: object, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


class ConceptSpaceMismatchError(UserError):
    """Components of different concept spaces were paired."""


class DataIntegrityError(UserError):
    """Stored data contradicts itself (e.g. vector count differs from sentence count)."""


class TrainingDivergedError(LcmError):
    """The loss stayed NaN or inf; training stops rather than export garbage. Exit code 1."""


class WeightsUnavailableError(UserError):
    """A model's weights cannot be reached; the message says how to point at local files."""
