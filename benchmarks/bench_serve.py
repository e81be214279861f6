"""``lcm serve`` under load: 20 requests (the shipped recording, 96.5 s of speech) from 4
concurrent clients against one server with the default recipe, through Gradio's own client.

Checked and reported: every request answered with a summary (none lost or refused), the most
requests seen waiting in the queue (bounded by the clients, and by ``--queue-size``), the
server's resident memory after half the load and after all of it (steady: the second half adds
next to nothing), and latency and throughput beside one client alone (requests run one at a
time on the one model in memory, so 4 clients wait in turn rather than run faster).

    python -m benchmarks --only bench_serve [--quick]      # --quick: pasted text, 8 requests
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "data" / "audio" / "aclsum_P17-1143_intro.flac"
CLIENTS = 4
QUEUE_SIZE = 16
DECODER = "retrieval (nearest source sentence)"


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Load:
    """Requests sent by client threads; what came back, how long each took, the queue seen."""

    def __init__(self, url: str, quick: bool, pid: int):
        from gradio_client import handle_file

        self.url, self.pid = url, pid
        self.inputs = ((None, RECORDING.with_suffix(".txt").read_text()) if quick
                       else (handle_file(str(RECORDING)), ""))
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.waiting_peak = 0
        self.memory_mb: list[float] = []
        """The server's resident memory after each answered request, in order."""
        self._lock = threading.Lock()

    def one(self, client) -> None:
        """One request, polling its status for the queue length while it waits."""
        began = time.perf_counter()
        job = client.submit(*self.inputs, 3, False, DECODER, 3.0, api_name="/summarize")
        while not job.done():
            update = job.status()
            with self._lock:
                self.waiting_peak = max(self.waiting_peak, update.queue_size or 0)
            time.sleep(0.25)
        try:
            status, result = job.result()
        except Exception as exc:  # a refused or failed request is counted, not raised
            status, result = f"{type(exc).__name__}: {exc}", ""
        with self._lock:
            if 'id="lcm-summary"' in result:
                self.latencies.append(time.perf_counter() - began)
                self.memory_mb.append(rss_mb(self.pid))
            else:
                self.failures.append(status[:200])

    def clients(self, count: int, each: int) -> float:
        """``count`` clients sending ``each`` requests in turn; wall seconds for all of them."""
        from gradio_client import Client

        def client_loop() -> None:
            client = Client(self.url, verbose=False)
            for _ in range(each):
                self.one(client)

        threads = [threading.Thread(target=client_loop) for _ in range(count)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - began


def run(quick: bool = False) -> list[Result]:
    from lcm.serve.child import served

    total = 8 if quick else 20
    with tempfile.TemporaryDirectory() as folder, \
            served(Path(folder) / "serve.log", ("--queue-size", str(QUEUE_SIZE)), cwd=REPO) as (url, process):
        warm = Load(url, quick, process.pid)
        warm.clients(1, 1)  # loads Whisper, MiniLM and the decoder
        alone = Load(url, quick, process.pid)
        alone_s = alone.clients(1, 2)
        load = Load(url, quick, process.pid)
        load_s = load.clients(CLIENTS, total // CLIENTS)
        alive = process.poll() is None
    if warm.failures or alone.failures or load.failures or not alive:
        raise RuntimeError(f"requests failed: {warm.failures + alone.failures + load.failures}; "
                           f"server alive: {alive}")
    name = "serve"
    one = f"one client, {len(alone.latencies)} requests"
    return [
        Result(name, f"requests answered, {CLIENTS} clients", "requests", len(load.latencies),
               "requests sent", total),
        Result(name, "most requests waiting in the queue", "requests", load.waiting_peak,
               f"clients ({CLIENTS}); --queue-size {QUEUE_SIZE}", CLIENTS, higher_is_better=False),
        Result(name, f"mean latency, {CLIENTS} clients (queue wait included)", "s",
               statistics.mean(load.latencies), one, statistics.mean(alone.latencies),
               higher_is_better=False),
        Result(name, f"throughput, {CLIENTS} clients", "req/min", 60 * len(load.latencies) / load_s,
               one, 60 * len(alone.latencies) / alone_s),
        Result(name, f"server memory after {total // 2} requests", "MB", load.memory_mb[total // 2 - 1],
               "after the warm-up request", warm.memory_mb[0], higher_is_better=False),
        Result(name, f"server memory after {total} requests", "MB", load.memory_mb[-1],
               f"after {total // 2} requests", load.memory_mb[total // 2 - 1], higher_is_better=False),
    ]


if __name__ == "__main__":
    from benchmarks.__main__ import print_table

    print_table([r.as_dict() for r in run(quick="--quick" in sys.argv)])
