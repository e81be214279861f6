"""The headline job's latency, stage by stage: ``recipes/speech_summarize.yaml`` on the shipped
recording (96.5 s of speech), against today's path (``benchmarks/todays_path.py``) in the same run.

- cold: ``lcm run`` as a fresh process, start to summary written;
- warm: the same recipe run again inside one process (``lcm run``'s own code: recipe resolved,
  task run, summary printed and written), split into stages by timing the functions that do
  them: load (checkpoint, Whisper, MiniLM and decoder weights), segment, recognise, encode,
  generate, decode (the summary's sentences chosen, candidates re-encoded), render;
- serve: one request to the server's ``Service`` (what a page request runs, without the web),
  the first after start and a warm one;
- the learned decoder alone: sentences/s with reranking (8 samples, the default) and greedy
  batched, with the round trip's cosine beside, on held-out Wikipedia sentences.

Stages nest (MiniLM loads inside the first encode): each stage's time is its own, inner stages
taken out. Each pair is timed in turns, so a change of load hits both alike. Rates are also given
per CPU second of this process (one torch thread): what a core of one's own would see.

    python -m benchmarks --only bench_latency [--quick]
"""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Result, registry  # noqa: E402
from benchmarks.todays_path import todays_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "speech_summarize.yaml"
RECORDING = REPO / "data" / "audio" / "aclsum_P17-1143_intro.flac"
STAGES = ("load", "segment", "recognise", "encode", "generate", "decode", "render")
TODAY = "today's path"


class StageClock:
    """Seconds spent in each stage, each stage's own (time in inner stages taken out)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._local = threading.local()

    def timed(self, stage: str, function: Callable, unless_in: tuple[str, ...] = ()) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            stack = self._local.__dict__.setdefault("stack", [])
            if any(s in unless_in for s, _ in stack):  # e.g. re-encoding inside decode
                return function(*args, **kwargs)
            stack.append((stage, [0.0]))
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                took = time.perf_counter() - began
                _, inner = stack.pop()
                self.seconds[stage] += took - inner[0]
                if stack:
                    stack[-1][1][0] += took
        return wrapper


@contextlib.contextmanager
def stage_clock() -> Iterator[StageClock]:
    """The headline path's functions timed, each under its stage, for the block."""
    from lcm.model import checkpoint
    from lcm.plugins.audio import stream
    from lcm.plugins.encoders import minilm
    from lcm.plugins.encoders.whisper_cascade import WhisperCascadeEncoder
    from lcm.plugins.learned import model
    from lcm.pipeline.pipeline import ConceptPipeline
    from lcm.plugins.speech import whisper
    from lcm.tasks import summarize

    clock = StageClock()
    swaps = [(checkpoint, "load_checkpoint", "load"), (whisper, "load_whisper", "load"),
             (minilm, "load_model", "load"), (model, "load_model", "load"),
             (stream, "plan_utterances", "segment"), (WhisperCascadeEncoder, "transcribe", "recognise"),
             (minilm.MiniLMEncoder, "encode", "encode"),
             (ConceptPipeline, "continuations", "generate"), (ConceptPipeline, "choose", "decode"),
             (summarize, "print_summary", "render"),
             (summarize, "write_summaries", "render")]
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in swaps]
    for owner, name, stage in swaps:
        setattr(owner, name, clock.timed(stage, owner.__dict__[name],
                                         ("decode",) if stage == "encode" else ()))
    try:
        yield clock
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def run_recipe(output: Path) -> None:
    """``lcm run recipes/speech_summarize.yaml output=...`` inside this process."""
    from rich.console import Console

    from lcm.cli import run_resolved
    from lcm.config import resolve_recipe
    from lcm.ui import Terminal

    resolved = resolve_recipe(RECIPE, (f"output={output}",), registry())
    screen = Terminal("text", out=Console(file=io.StringIO()), err=Console(file=io.StringIO()))
    run_resolved(resolved, registry(), screen)


def profiled(work: Callable[[], Any]) -> dict[str, float]:
    """Wall seconds of ``work`` ("total"), of each stage within it, and the CPU seconds of the
    process's threads meanwhile ("cpu": Whisper's and torch's)."""
    with stage_clock() as clock:
        began, cpu = time.perf_counter(), time.process_time()
        work()
        total, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"total": total, "cpu": cpu, **{s: clock.seconds.get(s, 0.0) for s in STAGES}}


def cold_seconds(module: str, output: Path) -> float:
    """A fresh ``lcm run`` of the recipe through ``python -m module``, start to exit."""
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", module, "run", str(RECIPE), f"output={output}",
                           "--quiet"], cwd=REPO, env=env, capture_output=True, text=True)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{module} run failed: {done.stderr[-2000:]}")
    return took


def best(samples: list[dict[str, float]]) -> dict[str, float]:
    """The fastest run's stages (by total)."""
    return min(samples, key=lambda s: s["total"])


def job_rows(quick: bool, folder: Path) -> list[Result]:
    """Cold and warm ``lcm run``, stage by stage, against today's path."""
    cli = "lcm.cli"
    cold: dict[str, list[float]] = {"after": [], TODAY: []}
    warm: dict[str, list[dict[str, float]]] = {"after": [], TODAY: []}
    first: dict[str, dict[str, float]] = {}
    for round_ in range(1 if quick else 2):
        cold["after"].append(cold_seconds(cli, folder / f"cold{round_}.json"))
        cold[TODAY].append(cold_seconds("benchmarks.todays_path", folder / f"cold_t{round_}.json"))
    for round_ in range(2 if quick else 3):  # the first in-process run loads what stays loaded
        for name in ("after", TODAY):
            with todays_path() if name == TODAY else contextlib.nullcontext():
                stages = profiled(lambda: run_recipe(folder / f"warm_{name[0]}{round_}.json"))
            (warm[name].append(stages) if round_ else first.setdefault(name, stages))
    rows = [Result("latency", "lcm run, cold (process start to summary)", "s",
                   min(cold["after"]), TODAY, min(cold[TODAY]), higher_is_better=False),
            Result("latency", "lcm run, first run in a process", "s", first["after"]["total"],
                   TODAY, first[TODAY]["total"], higher_is_better=False)]
    after, today = best(warm["after"]), best(warm[TODAY])
    rows += [Result("latency", "lcm run, warm process: total", "s", after["total"], TODAY,
                    today["total"], higher_is_better=False),
             Result("latency", "lcm run, warm process: CPU seconds", "cpu-s", after["cpu"], TODAY,
                    today["cpu"], higher_is_better=False)]
    rows += [Result("latency", f"lcm run, warm: {stage}", "s", after[stage], TODAY, today[stage],
                    higher_is_better=False) for stage in STAGES]
    rows += [Result("latency", f"lcm run, first run: {stage}", "s", first["after"][stage], TODAY,
                    first[TODAY][stage], higher_is_better=False) for stage in STAGES]
    return rows


def serve_rows(quick: bool) -> list[Result]:
    """One request through ``lcm serve``'s Service: the first after start, then a warm one."""
    from lcm.config import resolve_recipe
    from lcm.serve.service import Service

    recipe = resolve_recipe(RECIPE, (), registry()).config
    measured: dict[str, dict[str, Any]] = {}
    for name in ("after", TODAY):
        with todays_path() if name == TODAY else contextlib.nullcontext():
            began = time.perf_counter()
            service = Service.from_recipe(recipe, registry())
            start = time.perf_counter() - began

            def request() -> None:
                service.submit(str(RECORDING), "", service.defaults(), service.tracker(True)).result()

            requests = [profiled(request) for _ in range(2 if quick else 3)]
        measured[name] = {"start": start, "first": requests[0], "warm": best(requests[1:])}
    after, today = measured["after"], measured[TODAY]
    rows = [Result("latency", "serve: start (models loaded)", "s", after["start"], TODAY,
                   today["start"], higher_is_better=False),
            Result("latency", "serve: first request", "s", after["first"]["total"], TODAY,
                   today["first"]["total"], higher_is_better=False),
            Result("latency", "serve: warm request", "s", after["warm"]["total"], TODAY,
                   today["warm"]["total"], higher_is_better=False),
            Result("latency", "serve: warm request, CPU seconds", "cpu-s", after["warm"]["cpu"],
                   TODAY, today["warm"]["cpu"], higher_is_better=False),
            Result("latency", "serve: first request / warm request", "x",
                   after["first"]["total"] / after["warm"]["total"], TODAY,
                   today["first"]["total"] / today["warm"]["total"], higher_is_better=False)]
    rows += [Result("latency", f"serve, warm request: {stage}", "s", after["warm"][stage], TODAY,
                    today["warm"][stage], higher_is_better=False) for stage in STAGES[:-1]]
    return rows


def decoder_rows(quick: bool) -> list[Result]:
    """The learned decoder's speed, reranking and greedy, and the round trip it reaches."""
    import torch

    from benchmarks.bench_decoder import MODEL, document_sentences
    from lcm.components import component_options
    from lcm.plugins.encoders.minilm import MiniLMEncoder
    from lcm.plugins.learned.decoder import LearnedDecoder
    from lcm.plugins.learned.evaluation import round_trip_cosines

    torch.set_num_threads(1)
    count = 16 if quick else 64
    sentences = document_sentences(REPO / "data" / "wiki_heldout.jsonl", "text", 99, count)
    encoder = MiniLMEncoder(component_options(MiniLMEncoder, {"device": "cpu"}))
    vectors = encoder.encode(sentences).float()
    systems = {
        "8 samples reranked": LearnedDecoder(component_options(
            LearnedDecoder, {"model": str(MODEL), "encoder": {"name": "minilm"}}, registry()),
            encoder=encoder),
        "greedy, batched": LearnedDecoder(component_options(
            LearnedDecoder, {"model": str(MODEL), "candidates": 1, "beam_size": 1})),
    }
    rows = []
    for name, decoder in systems.items():
        decoder.decode(vectors[:2])  # weights loaded before timing
        measured = {}
        for variant in ("after", TODAY):
            with todays_path() if variant == TODAY else contextlib.nullcontext():
                wall, cpu = time.perf_counter(), time.process_time()
                texts = decoder.decode(vectors)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            cosine = float(round_trip_cosines(encoder, texts, vectors).mean())
            measured[variant] = (count / wall, count / cpu, cosine)
        after, today = measured["after"], measured[TODAY]
        rows += [Result("latency", f"decoder {name}: speed", "sentences/s", after[0], TODAY, today[0]),
                 Result("latency", f"decoder {name}: speed per CPU second", "sentences/cpu-s",
                        after[1], TODAY, today[1]),
                 Result("latency", f"decoder {name}: round-trip cosine ({count} wiki held-out)",
                        "cos", after[2], TODAY, today[2])]
    return rows


def load_average() -> Result:
    """The machine's 1-minute load average at the end, against its cores: how shared it was."""
    import os

    return Result("latency", "load average (1 min) at the end", "procs", os.getloadavg()[0],
                  "cores", os.cpu_count() or 1, higher_is_better=False)


def run(quick: bool = False) -> list[Result]:
    with tempfile.TemporaryDirectory() as folder:
        rows = decoder_rows(quick) + job_rows(quick, Path(folder)) + serve_rows(quick)
    return rows + [load_average()]


if __name__ == "__main__":
    from benchmarks.__main__ import print_table

    print_table([r.as_dict() for r in run(quick="--quick" in sys.argv)])
