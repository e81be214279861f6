"""What lcm writes: output guards, run locks and atomic replacement, shared by every task.

Three rules hold for every output a recipe names (fields built with ``path(output=...)``):

* lcm never deletes what it did not write. A directory lcm writes holds a marker file
  (``.lcm-output``); a non-empty directory without it is refused, and one with it is replaced
  only with ``overwrite=true``. An existing output file is likewise replaced only with
  ``overwrite=true``. All of this is checked before any work, with writability.
* One run at a time writes an output: a lock file beside it (``.<name>.lock``, holding pid and
  host) lives as long as the run. A lock whose process is gone is reported, never taken over
  silently, since lcm cannot know what the dead run left half-written.
* Replacing happens by writing a temporary sibling and renaming it into place, so a killed run
  leaves the previous output or the new one, never half of each.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from lcm import __version__
from lcm.errors import UserError
from lcm.fields import output_kind

MARKER = ".lcm-output"
"""In every directory lcm writes: the proof that replacing it loses nothing of the user's."""

_OVERWRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("lcm_overwrite", default=False)
"""``overwrite=true`` of an enclosing run (a pipeline's), inherited by its steps."""


class OutputError(UserError):
    """An output lcm may not write: foreign files, an earlier output, a lock, no permission."""


@dataclass(frozen=True)
class Output:
    """A path a task writes; ``directory`` tells a folder of files from a single file."""

    path: Path
    directory: bool


def outputs_of(config: Any) -> list[Output]:
    """The outputs a typed recipe names: its ``path(output=...)`` fields, nested ones too."""
    found: list[Output] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        kind = output_kind(f)
        if kind and value is not None:
            found.append(Output(Path(str(value)), kind == "dir"))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            found.extend(outputs_of(value))
    return found


def check_output(output: Output, overwrite: bool) -> None:
    """Refuse, before any work, an output this run may not write (exit 2, naming it)."""
    target = output.path
    if target.name in ("", ".", ".."):
        raise OutputError(f"{target}: names {target.resolve()} itself; an output must be a "
                          f"file or folder of its own (name a new one inside it)")
    if output.directory:
        if target.exists() and not target.is_dir():
            raise OutputError(f"{target}: output folder is an existing file")
        if target.is_dir() and any(p.name != MARKER for p in target.iterdir()):
            if not (target / MARKER).is_file():
                raise OutputError(f"{target}: folder holds files lcm did not write; lcm never "
                                  f"deletes those (name a new or empty folder)")
            if not overwrite:
                raise OutputError(f"{target}: holds an earlier lcm output; pass overwrite=true "
                                  f"to replace it")
    else:
        if target.is_dir():
            raise OutputError(f"{target}: output file is an existing folder")
        if target.exists() and not overwrite:
            raise OutputError(f"{target}: exists; pass overwrite=true to replace it")
    folder = next(p for p in target.parents if p.exists())
    if not folder.is_dir():
        raise OutputError(f"{target}: cannot be written, {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or \
            (target.exists() and not os.access(target, os.W_OK)):
        raise OutputError(f"{target}: not writable (permission denied)")


def mark(directory: Path) -> None:
    """Record that lcm writes ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = {"written_by": "lcm", "version": __version__}
    (directory / MARKER).write_text(json.dumps(stamp) + "\n")


def lock_path(target: Path) -> Path:
    """Beside the output, not in it, so swapping the output keeps the lock."""
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Hold ``target`` exclusively for the block; refuse if another run (or a dead one) holds it."""
    lock = lock_path(target)
    lock.parent.mkdir(parents=True, exist_ok=True)
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise OutputError(_held_by(target, lock)) from None
    with os.fdopen(fd, "w") as handle:
        json.dump(owner, handle)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _held_by(target: Path, lock: Path) -> str:
    try:
        owner = json.loads(lock.read_text())
        pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return (f"{target}: locked by {lock}, which is unreadable; remove it if no run is "
                f"writing here")
    if host == socket.gethostname() and not alive(pid):
        return (f"{target}: stale lock {lock} of pid {pid} on {host}, which is no longer running; "
                f"check the output, then remove the lock to write here again")
    return f"{target}: being written by another run (pid {pid} on {host}; lock {lock})"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def claimed(outputs: list[Output], overwrite: bool = False) -> Iterator[None]:
    """Check every output, lock each for the block, and mark the folders as lcm's.

    Only rank 0 of a multi-process run claims (every rank runs the same command).
    """
    overwrite = overwrite or _OVERWRITE.get()
    token = _OVERWRITE.set(overwrite)
    try:
        if os.environ.get("RANK", "0") != "0":
            yield
            return
        for output in outputs:
            check_output(output, overwrite)
        with contextlib.ExitStack() as stack:
            for output in outputs:
                stack.enter_context(locked(output.path))
            for output in outputs:
                if output.directory:
                    _remove_leftovers(output.path)
                    mark(output.path)
            yield
    finally:
        _OVERWRITE.reset(token)


def overwriting() -> bool:
    """Whether the running task was given ``overwrite=true`` (by its recipe or a pipeline's)."""
    return _OVERWRITE.get()


def run_task(task_cls: Any, config: Any, context: Any, overwrite: bool = False) -> Any:
    """Run a task (an ``lcm.interfaces.Task`` class) with the outputs it declares claimed; one that
    ``continues`` an earlier run in them may replace what that run wrote."""
    with claimed(task_cls.outputs(config), overwrite or task_cls.continues(config)):
        return task_cls(config).run(config, context)


STAGING, _RETIRED = ".tmp-", ".old-"
"""Name parts of an output's temporary siblings: being written, being replaced."""


def _remove_leftovers(target: Path) -> None:
    """Temporary siblings of ``target`` left by a killed run: lcm's own (they hold its marker,
    so a user's folder that happens to share the name is left alone), and unused while the lock
    is held."""
    for pattern in (STAGING, _RETIRED):
        for leftover in target.parent.glob(f".{target.name}{pattern}*"):
            if leftover.is_dir() and (leftover / MARKER).is_file():
                shutil.rmtree(leftover, ignore_errors=True)


def staging_directory(target: Path) -> Path:
    """A fresh temporary sibling of ``target`` (same filesystem, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGING}", dir=target.parent))
    mark(staging)  # so a killed run's leftover is recognisably lcm's
    return staging


def _respect_umask(folder: Path) -> None:
    """Give a finished output the modes the umask asks for: ``mkdtemp`` makes its folder 0700
    and some writers (safetensors) make files 0600, whatever the umask."""
    mask = current_umask()
    folder.chmod(0o777 & ~mask)
    for root, folders, files in os.walk(folder):
        for name in folders:
            Path(root, name).chmod(0o777 & ~mask)
        for name in files:
            path = Path(root, name)
            executable = path.stat().st_mode & 0o100
            path.chmod((0o777 if executable else 0o666) & ~mask)


def current_umask() -> int:
    """The process's umask (reading it means setting it: it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def take_for_replacing(source: Path, target: Path) -> Path | None:
    """Rename ``source`` to a fresh staging sibling of ``target`` (then ``replace_directory``):
    of several processes finishing one output, exactly one gets it, the others get None. The
    rename is atomic, so a kill leaves a leftover that the next claim of ``target`` removes."""
    staging = target.with_name(f".{target.name}{STAGING}{socket.gethostname()}-{os.getpid()}")
    try:
        os.rename(source, staging)
    except FileNotFoundError:
        return None
    return staging


def replace_directory(staging: Path, target: Path) -> None:
    """Move the complete ``staging`` to ``target``; an old ``target`` goes only after the move."""
    mark(staging)
    _respect_umask(staging)
    if not target.exists():
        os.replace(staging, target)
        return
    retired = target.with_name(f".{target.name}{_RETIRED}{os.getpid()}")
    os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def write_text_atomically(target: Path, text: str) -> None:
    """Write a sibling file, then rename it into place, so readers never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
