"""``lcm serve`` in a child process, ready when its page answers: what the browser test, the
screenshot script and the load benchmark share."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Optional


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def served(log: Path, args: tuple[str, ...] = (), port: Optional[int] = None,
           cwd: Optional[Path] = None, ready_s: float = 600) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``lcm serve ARGS`` on a free port, wait until ``GET /`` answers, yield its URL and
    process; stop it afterwards. Its output goes to ``log`` (named in a failure)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "lcm.cli", "serve", *args, "--port",
                                    str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        deadline = time.monotonic() + ready_s
        while not answers(url):
            if process.poll() is not None:
                raise RuntimeError(f"lcm serve exited with {process.returncode}: "
                                   f"{log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"lcm serve did not answer within {ready_s:.0f} s; see {log}")
            time.sleep(0.5)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(url: str) -> bool:
    """True when ``url`` returns 200."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False
