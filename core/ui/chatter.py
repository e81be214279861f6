"""Third-party chatter (gloo, DeepSpeed, transformers, faster-whisper) goes to the run's log
file, and to stderr only under ``--debug``/``-v``; lcm's own warnings become terminal notes.

Python loggers are routed here. Some libraries print from C++ straight to file descriptors 1
and 2 (gloo's "[Gloo] Rank 0 is connected to 0 peer ranks"); ``native_output_to_log`` catches
those at the descriptor level around the calls that make them.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Optional

NATIVE = logging.getLogger("lcm.native")
"""Lines C++ code printed to fds 1/2 while they were caught (logged at INFO: the file only)."""
_VERBOSE_ENV = "LCM_VERBOSE"
_INSTALLED: list[logging.Handler] = []


class _NoteHandler(logging.Handler):
    """lcm's own warnings, said once each on the current terminal and counted."""

    def emit(self, record: logging.LogRecord) -> None:
        from lcm.ui.terminal import current

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
    """Take back the loggers that libraries loaded since ``configure`` fitted with handlers of
    their own (transformers and DeepSpeed print to stdout/stderr themselves): their records
    then reach the root's handlers like everyone else's."""
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()
    for name in ("DeepSpeed", "faster_whisper"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


@contextlib.contextmanager
def native_output_to_log() -> Iterator[None]:
    """Catch what native code writes to fds 1 and 2 meanwhile, and log it line by line (under
    ``-v`` it is left on the terminal)."""
    if os.environ.get(_VERBOSE_ENV) == "1":
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as caught:
        try:
            for fd in saved:
                os.dup2(caught.fileno(), fd)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in saved.items():
                os.dup2(original, fd)
                os.close(original)
            caught.seek(0)
            for line in caught.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    NATIVE.info(line)
