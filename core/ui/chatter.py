"""Third-party chatter (gloo, DeepSpeed, transformers, faster-whisper) goes to the run's log
file, and to stderr only under ``--debug``/``-v``; lcm's own warnings become terminal notes.

Python loggers are routed here. Some libraries print from C++ straight to file descriptors 1
and 2 (gloo's "[Gloo] Rank 0 is connected to 0 peer ranks"); ``native_output_to_log`` catches
those at the descriptor level around the calls that make them.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from lcm.ui.terminal import current

NATIVE = logging.getLogger("lcm.native")
"""Lines C++ code printed to fds 1/2 while they were caught (logged at INFO: the file only)."""
_VERBOSE_ENV = "LCM_VERBOSE"
_INSTALLED: list[logging.Handler] = []


class _NoteHandler(logging.Handler):
    """lcm's own warnings, said once each on the current terminal and counted."""

    def emit(self, record: logging.LogRecord) -> None:
        current().note(record.getMessage())


def configure(log_file: Optional[Path], verbose: bool) -> None:
    """Route every logger for this process: third-party records to ``log_file`` (created on the
    first record) and, when ``verbose``, to stderr; lcm's warnings to the terminal as notes."""
    root = logging.getLogger()
    for handler in _INSTALLED:  # an earlier command's, in the same process (tests)
        root.removeHandler(handler)
    _INSTALLED.clear()
    root.setLevel(logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, delay=True, encoding="utf-8")
        to_file.setFormatter(formatter)
        _INSTALLED.append(to_file)
    os.environ.pop(_VERBOSE_ENV, None)
    if verbose:
        os.environ[_VERBOSE_ENV] = "1"
        to_stderr = logging.StreamHandler(sys.stderr)
        to_stderr.setFormatter(formatter)
        _INSTALLED.append(to_stderr)
    for handler in _INSTALLED:
        root.addHandler(handler)
    own = logging.getLogger("lcm")
    own.handlers = [h for h in own.handlers if not isinstance(h, _NoteHandler)]
    notes = _NoteHandler(logging.WARNING)
    own.addHandler(notes)
    logging.captureWarnings(True)
    reroute()


def reroute() -> None:
    """Take back the loggers of the libraries that print by themselves (transformers and
    DeepSpeed fit handlers of their own on import): those loaded already now, the others as
    they are imported. Their records then reach the root's handlers like everyone else's."""
    if not any(isinstance(finder, _ImportWatch) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ImportWatch())
    for name, fix in _FIXES.items():
        if name in sys.modules:
            fix(sys.modules[name])


def _quiet_transformers(module: Any) -> None:
    module._configure_library_root_logger()  # fit its handler now (it does so once)...
    module.disable_default_handler()  # ...so that it comes off for good
    module.enable_propagation()


def _quiet_deepspeed(module: Any) -> None:
    for handler in list(module.logger.handlers):  # a stdout handler, propagation off
        module.logger.removeHandler(handler)
    module.logger.propagate = True


_FIXES: dict[str, Callable[[Any], None]] = {"transformers.utils.logging": _quiet_transformers,
                                            "deepspeed.utils.logging": _quiet_deepspeed}


class _ImportWatch(importlib.abc.MetaPathFinder):
    """Applies ``_FIXES`` right after their module first runs, wherever it is imported from."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        fix = _FIXES.get(fullname)
        if fix is None:
            return None
        for finder in sys.meta_path:
            found = finder.find_spec(fullname, path, target) \
                if finder is not self and hasattr(finder, "find_spec") else None
            if found is not None and found.loader is not None:
                run = found.loader.exec_module

                def exec_module(module: Any, _run: Callable = run, _fix: Callable = fix) -> None:
                    _run(module)
                    _fix(module)

                found.loader.exec_module = exec_module
                return found
        return None


@contextlib.contextmanager
def native_output_to_log() -> Iterator[None]:
    """Catch what native code writes to fds 1 and 2 meanwhile, and log it line by line (under
    ``-v`` it is left on the terminal). Should the call fail, what it wrote goes to stderr too:
    it may be the only account of why."""
    if os.environ.get(_VERBOSE_ENV) == "1":
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    failed = True
    with tempfile.TemporaryFile() as caught:
        try:
            for fd in saved:
                os.dup2(caught.fileno(), fd)
            yield
            failed = False
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in saved.items():
                os.dup2(original, fd)
                os.close(original)
            caught.seek(0)
            text = caught.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if line.strip():
                    NATIVE.info(line)
            if failed and text.strip():
                sys.stderr.write(text)
