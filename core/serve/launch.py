"""``lcm serve``'s start: the recipe checked to be a summarize one, the port checked free, the
model loaded once, then the page served (the CLI stays a thin layer)."""
from __future__ import annotations

import errno
import faulthandler
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from lcm.config import load_recipe, resolve_recipe
from lcm.errors import UserError
from lcm.serve.page import serve
from lcm.serve.requests import DEFAULT_MAX_DURATION_S
from lcm.serve.service import Service

if TYPE_CHECKING:
    from lcm.registry import Registry


def start(recipe: Path, overrides: tuple[str, ...], registry: "Registry", host: str, port: int,
          max_upload_mb: float, queue_size: int,
          max_duration_s: Optional[float] = DEFAULT_MAX_DURATION_S) -> None:
    task = load_recipe(recipe, overrides).get("task")
    if task != "summarize":
        raise UserError(f"{recipe}: lcm serve runs summarize recipes; this one's task is {task!r}")
    resolved = resolve_recipe(recipe, overrides, registry)
    check_port(host, port)  # before minutes of loading, not after
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: where a stuck request is
    service = Service.from_recipe(resolved.config, registry, max_duration_s)  # loaded once
    serve(service, host, port, max_upload_mb, queue_size)


def check_port(host: str, port: int) -> None:
    """Refuse a port another program holds, in one line."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise UserError(f"cannot listen on {host}:{port}: {reason} (pick another --port)") from None
