"""What a request may be and how it ends, apart from what it computes: pasted text that is
really text, a duration limit on recordings by default, cancellation that stops the work, and
the uploaded files removed when their request ends (and the whole upload folder when the
server stops)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any, Optional

from lcm.errors import LcmError, UserError
from lcm.ui import Terminal
from lcm.ui.bars import Bar

DEFAULT_MAX_DURATION_S = 1800.0
"""Recordings longer than this (30 minutes) are refused by default (``--max-duration-s``)."""
_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}
"""Unicode categories that show nothing: controls, format characters (zero-width space, joiners,
the byte-order mark) and spaces."""


def checked_text(text: str) -> str:
    """Pasted text, refused in one line where it is empty once invisible characters are left
    out, or is not valid Unicode (a lone surrogate cannot be encoded, nor segmented)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UserError(f"the text holds an unpaired surrogate (U+{ord(text[exc.start]):04X}) at "
                        f"character {exc.start + 1}: it is not valid Unicode; paste it again "
                        f"from its source") from None
    if all(unicodedata.category(c) in _INVISIBLE for c in text):
        raise UserError("no text given: paste some, or give a recording")
    return text


def with_duration_limit(spec: Any, limit_s: Optional[float]) -> Any:
    """A component spec whose options (or their sections) have ``max_duration_s`` unset, with
    it set to ``limit_s``; a recipe's own limit is kept."""
    if limit_s is None or not dataclasses.is_dataclass(getattr(spec, "options", None)):
        return spec
    options = _limited(spec.options, limit_s)
    return spec if options is spec.options else type(spec)(spec.cls, options)


def _limited(options: Any, limit_s: float) -> Any:
    changes = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if f.name == "max_duration_s" and value is None:
            changes[f.name] = limit_s
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            inner = _limited(value, limit_s)
            if inner is not value:
                changes[f.name] = inner
        elif f.name == "options" or _is_spec(value):
            limited = with_duration_limit(value, limit_s)
            if limited is not value:
                changes[f.name] = limited
    return dataclasses.replace(options, **changes) if changes else options


def _is_spec(value: Any) -> bool:
    return hasattr(value, "cls") and dataclasses.is_dataclass(getattr(value, "options", None))


ABANDONED_S = 10.0
"""A request whose page stopped asking for its progress this long ago is abandoned (the user
closed the tab or pressed stop): its work stops, and the worker takes the next request."""


class RequestCancelled(LcmError):
    """The user left or pressed stop; the request's work stopped at its next progress step."""


class _CheckedBar(Bar):
    def __init__(self, check: Any, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._check = check

    def shown(self) -> None:
        self._check()


class CancellableTerminal(Terminal):
    """The terminal requests run under: every progress step of the running request checks
    whether it was cancelled or abandoned, so a long recording stops within a step (seconds),
    not at its end."""

    def __init__(self) -> None:
        super().__init__(mode="quiet")
        self._watch: Any = None

    def begin(self, watch: Any) -> None:
        """A request starts; ``watch`` (its ``Tracker``) says whether it was cancelled and when
        its page last asked for its progress."""
        self._watch = watch

    def check(self) -> None:
        watch = self._watch
        if watch is None:
            return
        seen = watch.seen
        if watch.cancelled or (seen is not None and time.monotonic() - seen > ABANDONED_S):
            raise RequestCancelled("request cancelled")

    def progress(self, description: str, total: Optional[int] = None, unit: str = "",
                 initial: int = 0) -> Bar:
        self.check()
        bar = _CheckedBar(self.check, description, total, unit, initial, on_close=self._closed)
        self._open.append(bar)
        return bar


class UploadFolder:
    """The folder the page keeps uploads in: lcm's own (a fresh temporary folder), so the
    server removes exactly what it received: a request's file when the request ends, the
    folder when the server stops."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="lcm-serve-uploads-"))
        os.environ["GRADIO_TEMP_DIR"] = str(self.path)

    def holds(self, path: Optional[str]) -> bool:
        if not path:
            return False
        try:
            return Path(path).resolve().is_relative_to(self.path.resolve())
        except OSError:
            return False

    def discard(self, path: Optional[str]) -> None:
        """Remove an upload (and its folder, which Gradio makes per file) once its request ended."""
        if not self.holds(path):
            return
        file = Path(path)
        file.unlink(missing_ok=True)
        folder = file.parent
        while folder != self.path and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
