"""The ``summarize`` task: a recording or a text in; its summary out, each summary sentence
traced to the source segment it came from.

The source: with a speech encoder that reads recordings itself (``lcm.interfaces.DocumentEncoder``)
the input is one recording and its utterances (transcripts, times) are the source concepts; with
a text encoder the input holds text documents (one per line of a .txt, or .jsonl/.parquet
records, or a whole .txt as ONE document with ``as_single_document``), segmented as ``prepare``
segments them. The prompt is laid out as the model was fine-tuned (``lcm.data.instruction``);
summary concepts are generated until the end concept or ``max_summary_concepts``, decoded (the
decoder observes the source first, so a retrieval decoder can return its sentences), and each is
traced to its nearest source segment by cosine. Printed readably and written as JSON.

Sources longer than the model's context are cut or summarised in parts (``long_input``; see
``lcm.generate.summary``), and a log line says which.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from rich.markup import escape

from lcm.fields import choice, component, path
from lcm.errors import InputFileError, UserError
from lcm.generate.summary import LONG_INPUT_MODES
from lcm.interfaces import RunContext, Task
from lcm.tasks.continuation import (NO_SENTENCES, ContinuationOptions, check_decoder,
                                    check_spaces, format_counts, stop_rules)
from lcm.tasks.decoded import decoding_record, describe_decoding
from lcm.tasks.document_input import DocumentInput
from lcm.ui.scale import LEGEND
from lcm.ui.scale import describe as describe_cosine
from lcm.json_output import dumps

log = logging.getLogger(__name__)

NO_REFERENCE = "no reference text"
ENCODE_BATCH = 256
"""Sentences per encoder call, so a long text shows progress as it is encoded."""


@dataclass
class SummarizeConfig(DocumentInput, ContinuationOptions):
    model: str = path(must_exist=True, space_source=True, help="checkpoint of a summarisation model")
    input: str = path(must_exist=True, help="a recording (with a speech encoder) or a text file: "
                                            ".txt (one document per line), .jsonl or .parquet")
    output: Optional[str] = path(None, output=True, help="JSON of the segments, summaries and provenance")
    encoder: Any = component("encoder", default="minilm", help="reads the input")
    text_encoder: Any = component("encoder", help=(
        "encodes the end sentence (and the model's source suffix) when `encoder` takes no text; "
        "a text encoder of the same space"))
    decoder: Any = component("decoder", default="retrieval")
    as_single_document: bool = False
    """Read a .txt input as ONE document instead of one document per line."""
    reference_field: Optional[str] = None
    """The .jsonl field holding a reference summary; with ``evaluation_output``, for scoring."""
    evaluation_output: Optional[str] = path(None, output=True, help=(
        "JSONL of {id, source, reference, prediction} per document: the input of `evaluate` "
        "mode generation (needs reference_field)"))
    max_summary_concepts: int = 8
    """Most summary sentences per prompt (per part of a long source)."""
    order: str = choice("generation", ("generation", "source"), help=(
        "the summary's sentences in the order generated, or in source order (an extractive "
        "summary then reads like the document, as lead-k/random-k baselines do)"))
    max_source_concepts: Optional[int] = None
    """Most source concepts in one prompt; None: what the model's max_seq_len leaves room for."""
    long_input: str = choice("chunk", LONG_INPUT_MODES, help=(
        "a source longer than max_source_concepts is summarised in near-equal parts whose "
        "summaries are read in order (chunk), or cut to its first max_source_concepts (truncate)"))


@dataclass
class SourceDocument:
    """A source as concepts: each segment's text, its vector and (recordings) its time span."""

    id: str
    texts: list[str]
    vectors: Any  # (N, D) float tensor, the encoder's space
    spans: Optional[list[tuple[Optional[float], Optional[float]]]] = None
    modality: str = "text"
    reference: Optional[str] = None
    """The input's reference summary (``reference_field``), kept for evaluation."""


class Summarize(Task):
    name = "summarize"
    description = "Summarise a recording or a text with a fine-tuned model; show where each sentence came from."
    Config = SummarizeConfig

    def run(self, recipe: SummarizeConfig, context: RunContext) -> list[dict[str, Any]]:
        started = time.perf_counter()
        source = check_input_file(recipe.input)
        if recipe.evaluation_output and not recipe.reference_field:
            raise UserError("evaluation_output needs reference_field (the input's reference summaries)")
        summarizer = Summarizer(recipe, context.registry)
        summarizer.settings(recipe)  # refuses a bad decoder or length before any input is read
        skipped: Counter[str] = Counter()
        terminal = context.console
        results = []
        for doc in summarizer.documents(recipe, source, skipped, terminal):
            result = summarizer.summarize(doc, recipe).record
            if recipe.reference_field:
                result["reference"] = doc.reference
            results.append(result)
        if not results:
            raise InputFileError(source, f"nothing to summarise ({format_counts(skipped)})")
        if recipe.show:
            terminal.show_some(results, lambda result: print_summary(result, terminal),
                               "summaries", recipe.output)
            terminal.print(f"[dim]{escape(LEGEND)}[/dim]")
        if recipe.output:
            write_summaries(Path(recipe.output), recipe, results)
        if recipe.evaluation_output:
            write_evaluation_pairs(Path(recipe.evaluation_output), results)
        terminal.summary(*summary_line(results, skipped, time.perf_counter() - started,
                                       recipe.output))
        return results


def summary_line(results: list[dict[str, Any]], skipped: Counter, seconds: float,
                 output: Optional[str]) -> tuple[str, dict[str, Any]]:
    """What the run did, as a line and as the same figures for ``--json``."""
    data = {"task": "summarize", "documents": len(results),
            "source_segments": sum(len(r["segments"]) for r in results),
            "summary_sentences": sum(len(r["summary"]) for r in results),
            "seconds": round(seconds, 1), "skipped": dict(skipped), "output": output}
    line = (f"summarised {data['documents']} document(s) of {data['source_segments']} segment(s) "
            f"into {data['summary_sentences']} sentence(s) in {seconds:.1f} s (skipped: "
            f"{format_counts(skipped)})" + (f"; wrote {output}" if output else ""))
    return line, data


def _quiet(stage: str) -> None:
    """The default stage callback: ``lcm run`` shows progress bars instead."""


@dataclass
class Summary:
    """One source's summary: the JSON-ready record, and the generated concepts behind it."""

    record: dict[str, Any]
    concepts: Any  # (M, D) float tensor, the encoder's space (denormalised)


class Summarizer:
    """A summarisation model and its encoders, loaded once, summarising one source per call.

    ``lcm run`` summarises the documents of its input file with it, ``lcm serve`` each request,
    so both run the same code. What a call may change beside the recipe's model (summary
    length, stop rules, decoder, head sampling options) comes in the recipe given to each call.
    """

    def __init__(self, recipe: SummarizeConfig, registry: Any):
        self.registry = registry
        self.model_dir, self.device = recipe.model, recipe.device
        self._loaded: Any = None
        self._sampling: Any = None
        loaded = self.model(recipe.sampling)
        self.encoder = recipe.encoder.create()
        self.reads_recordings = _reads_recordings(self.encoder)
        self.framing = _framing_encoder(recipe, self.encoder)
        self.suffix = _source_suffix(loaded, self.framing)

    def model(self, sampling: dict[str, Any]) -> Any:
        """The checkpoint loaded with ``sampling``; reloaded (replacing the previous one, so one
        model stays in memory) only when the sampling options change."""
        from lcm.model.checkpoint import load_checkpoint

        if self._loaded is None or sampling != self._sampling:
            self._loaded = None  # the old copy goes before the new one loads
            self._loaded = load_checkpoint(self.model_dir, self.registry, self.device, sampling)
            self._sampling = sampling
        return self._loaded

    def settings(self, recipe: SummarizeConfig) -> tuple[Any, int]:
        """The stop rules and source cap of ``recipe``, its decoder's space checked."""
        loaded = self.model(recipe.sampling)
        decoder = recipe.decoder.create()  # made afresh per document; created here to check
        check_spaces(loaded.space, self.encoder, decoder)
        check_decoder(loaded.model.head, decoder)
        if self.framing is not self.encoder:
            check_spaces(loaded.space, self.framing, decoder)
        rules = stop_rules(recipe.stop, recipe.max_summary_concepts, self.framing)
        cap = source_cap(recipe, loaded.model.config.max_seq_len, 0 if self.suffix is None else 1)
        return rules, cap

    def documents(self, recipe: SummarizeConfig, source: Path, skipped: Counter,
                  terminal: Any) -> Iterator[SourceDocument]:
        """The sources of the input file: one recording, or its text documents (progress on
        ``terminal``)."""
        if self.reads_recordings:
            return iter([read_recording(source, self.encoder, terminal)])
        return _text_documents(recipe, source, self.encoder, skipped, terminal)

    def text_document(self, recipe: SummarizeConfig, text: str, id: str,
                      terminal: Any) -> SourceDocument:
        """``text`` as one source, segmented as the recipe says and encoded by the text encoder
        (the framing one where ``encoder`` takes speech: same space, checked at load)."""
        sentences = recipe.sentences(text)
        if not sentences:
            raise UserError(f"{NO_SENTENCES} in the text given")
        with terminal.progress("encode", len(sentences), "sentences") as bar:
            return SourceDocument(id, sentences, _encode_sentences(self.framing, sentences, bar))

    def summarize(self, doc: SourceDocument, recipe: SummarizeConfig,
                  stage: Callable[[str], None] = _quiet) -> Summary:
        """``doc`` summarised as ``recipe`` says; ``stage`` hears each step as it starts."""
        rules, cap = self.settings(recipe)
        # A fresh decoder per document: what it observes (the source) stays that document's.
        return summarize_document(doc, self.model(recipe.sampling), rules, self.suffix, cap,
                                  recipe, recipe.decoder.create(), stage)


# --------------------------------------------------------------------------- inputs

def check_input_file(location: str) -> Path:
    """The input as a path, refused early when it cannot hold anything to summarise."""
    source = Path(location)
    if not source.is_file():
        raise InputFileError(source, "not a file (give one recording or one text file)")
    if source.stat().st_size == 0:
        raise InputFileError(source, "empty file (0 bytes)")
    return source


def _reads_recordings(encoder: Any) -> bool:
    """True when ``encoder`` takes speech; such an encoder must read whole recordings itself."""
    from lcm.interfaces import DocumentEncoder

    if "speech" not in encoder.modalities:
        return False
    if not isinstance(encoder, DocumentEncoder):
        raise UserError(f"encoder {encoder.name!r} takes speech but cannot read a whole recording "
                        f"(it offers no encode_document); use one that does, e.g. whisper_cascade")
    return True


def _framing_encoder(recipe: SummarizeConfig, encoder: Any) -> Any:
    """The encoder of the framing sentences: ``text_encoder``, else ``encoder`` if it takes text."""
    if recipe.text_encoder is not None:
        return recipe.text_encoder.create()
    if "text" in encoder.modalities:
        return encoder
    raise UserError(f"encoder {encoder.name!r} takes no text, but the end sentence "
                    f"{recipe.stop.end_sentence!r} must be encoded: set text_encoder to a text "
                    f"encoder of the same space")


def _source_suffix(loaded: Any, framing: Any) -> Any:
    """The normalised concept of the separator the model was fine-tuned with, if any."""
    from lcm.data.instruction import InstructionFormat

    instruction = InstructionFormat.from_checkpoint(loaded.meta.get("extra") or {})
    if instruction is None or not instruction.source_suffix:
        return None
    return loaded.normalizer.normalize(framing.encode([instruction.source_suffix])[0].float())


def source_cap(recipe: SummarizeConfig, max_seq_len: int, framing_concepts: int) -> int:
    """Most source concepts one prompt may hold, leaving room for the summary."""
    room = max_seq_len - recipe.max_summary_concepts - framing_concepts
    if room < 1:
        raise UserError(f"the model reads at most {max_seq_len} concepts, which leaves no room for a "
                        f"source beside max_summary_concepts {recipe.max_summary_concepts}")
    wanted = recipe.max_source_concepts
    if wanted is not None and wanted < 1:
        raise UserError(f"max_source_concepts must be positive, got {wanted}")
    if wanted is not None and wanted > room:
        log.warning("max_source_concepts %d lowered to %d: the model reads %d concepts, "
                    "%d of them kept for the summary", wanted, room, max_seq_len,
                    max_seq_len - room)
    return min(wanted or room, room)


def read_recording(source: Path, encoder: Any, terminal: Any) -> SourceDocument:
    """The utterances of one recording, streamed from the encoder with a progress bar."""
    import torch

    texts, vectors, spans = [], [], []
    with terminal.progress(f"encode {source.name}", unit="segments") as bar:
        for segment in encoder.encode_document(str(source)):
            texts.append(segment.text)
            vectors.append(torch.as_tensor(segment.vector).float().reshape(-1))
            spans.append((segment.start_s, segment.end_s))
            bar.update(1)
            if segment.end_s is not None:
                bar.set(at=format_time(segment.end_s))
    if not texts:
        raise InputFileError(source, "no speech found in the recording")
    return SourceDocument(source.stem, texts, torch.stack(vectors), spans, "speech")


def _text_documents(recipe: SummarizeConfig, source: Path, encoder: Any, skipped: Counter,
                    terminal: Any) -> Iterator[SourceDocument]:
    """The input's text documents, segmented and encoded; those left out are counted."""
    from lcm.data.readers import RawDocument

    def skip(reason: str) -> None:
        skipped[reason] += 1

    if recipe.as_single_document:
        raws: Any = [RawDocument(source.stem, _whole_text(source), {})]
    else:
        raws = recipe.documents(source, on_skip=skip)
    with terminal.progress("summarise", unit="sentences") as bar:
        for raw in raws:
            sentences = recipe.sentences(raw.text)
            if not sentences:
                skip(NO_SENTENCES)
                continue
            reference = raw.meta.get(recipe.reference_field) if recipe.reference_field else None
            if recipe.reference_field and not isinstance(reference, str):
                skip(NO_REFERENCE)
                continue
            yield SourceDocument(raw.id, sentences, _encode_sentences(encoder, sentences, bar),
                                 reference=reference)


def _whole_text(source: Path) -> str:
    try:
        text = source.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(source, f"not valid UTF-8 text: byte offset {exc.start}") from None
    if not text.strip():
        raise InputFileError(source, "holds no text (only whitespace)")
    return text


def _encode_sentences(encoder: Any, sentences: list[str], bar: Any) -> Any:
    import torch

    parts = []
    for start in range(0, len(sentences), ENCODE_BATCH):
        batch = sentences[start:start + ENCODE_BATCH]
        parts.append(encoder.encode(batch).float())
        bar.update(len(batch))
    return torch.cat(parts)


# --------------------------------------------------------------------------- summarising

def summarize_document(doc: SourceDocument, loaded: Any, rules: Any, suffix: Any, cap: int,
                       recipe: SummarizeConfig, decoder: Any,
                       stage: Callable[[str], None] = _quiet) -> Summary:
    """Generate, decode and trace the summary of one source."""
    import torch

    from lcm.data.instruction import build_prompt
    from lcm.generate.loop import generate
    from lcm.generate.summary import plan_parts, trace_sources
    from lcm.ui import current

    decoder.observe(doc.texts, doc.vectors)
    total = len(doc.texts)
    parts = plan_parts(total, cap, recipe.long_input)
    if len(parts) > 1:
        current().note(f"{doc.id}: {total} source concepts, more than {cap}: summarised in "
                       f"{len(parts)} parts", key="long source summarised in parts")
    elif parts[0].stop < total:
        current().note(f"{doc.id}: {total} source concepts, more than {cap}: the last "
                       f"{total - parts[0].stop} left out (long_input: truncate)",
                       key="long source truncated")
    normalised = loaded.normalizer.normalize(doc.vectors)
    prompts = [build_prompt(normalised[p.start:p.stop], suffix) for p in parts]
    stage("generating")
    continuations = generate(loaded.model, prompts, rules, loaded.normalizer.denormalize,
                             seed=recipe.seed)
    concepts = torch.cat([c.concepts for c in continuations])
    stage("decoding")
    decoded = decoder.decode_traced(concepts, recipe.language) if len(concepts) else []
    sentences = [d.text for d in decoded]
    origins = trace_sources(concepts, doc.vectors, sentences, doc.texts)
    part_of = [i for i, c in enumerate(continuations) for _ in range(len(c.concepts))]
    summary = [{"text": text, "source_index": origin.index, "similarity": round(origin.similarity, 4),
                **_span(doc, origin.index), "part": part, **decoding_record(how)}
               for text, origin, part, how in zip(sentences, origins, part_of, decoded)]
    if recipe.order == "source":
        summary.sort(key=lambda item: item["source_index"])
    record = {"id": doc.id, "modality": doc.modality,
              "segments": [{"index": i, "text": text, **_span(doc, i)} for i, text in enumerate(doc.texts)],
              "summary": summary,
              "parts": [{"start": p.start, "stop": p.stop, "stop_reason": c.stop_reason}
                        for p, c in zip(parts, continuations)],
              "left_out": total - parts[-1].stop}
    return Summary(record, concepts)


def _span(doc: SourceDocument, index: int) -> dict[str, Any]:
    if doc.spans is None:
        return {}
    start, end = doc.spans[index]
    return {"start_s": start, "end_s": end}


# --------------------------------------------------------------------------- output

def format_time(seconds: float) -> str:
    """``mm:ss.s``, or ``h:mm:ss.s`` from an hour on."""
    minutes, rest = divmod(float(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes:02d}:{rest:04.1f}"


def _label(index: int, item: dict[str, Any]) -> str:
    """``[index]``, with the time span for a recording's segment."""
    if item.get("start_s") is None:
        return f"[{index}]"
    return f"[{index}] {format_time(item['start_s'])}–{format_time(item['end_s'])}"


def print_summary(result: dict[str, Any], terminal: Any) -> None:
    """The source segments, then the summary with each sentence's origin and how close it is."""
    segments = result["segments"]
    terminal.rule(f"{escape(result['id'])} ({len(segments)} {result['modality']} segments)")
    terminal.print("[bold]Transcript[/bold]" if result["modality"] == "speech" else "[bold]Source[/bold]")
    for segment in segments:
        label = escape(_label(segment["index"], segment))
        terminal.print(f"  [dim]{label}[/dim] {escape(segment['text'])}")
    terminal.print("[bold]Summary[/bold]")
    for number, item in enumerate(result["summary"], 1):
        terminal.print(f"  {number}. {escape(item['text'])}")
        origin = escape(_label(item["source_index"], item))
        terminal.print(f"     [dim]{describe_decoding(item)}; ← {origin}[/dim]  "
                       f"[cyan]{describe_cosine(item['similarity'])}[/cyan]")
    stops = ", ".join(sorted({p["stop_reason"] for p in result["parts"]}))
    terminal.print(f"  [dim]{len(result['summary'])} sentence(s) from {len(result['parts'])} "
                   f"part(s), stopped: {stops}; {result['left_out']} segment(s) left out[/dim]")


def write_evaluation_pairs(target: Path, results: list[dict[str, Any]]) -> None:
    """One JSON line per document: source segments, reference, predicted summary sentences."""
    from lcm.outputs import write_text_atomically

    lines = [dumps({"id": r["id"], "source": [s["text"] for s in r["segments"]],
                         "reference": r["reference"],
                         "prediction": [s["text"] for s in r["summary"]]}, ensure_ascii=False)
             for r in results]
    write_text_atomically(target, "\n".join(lines) + "\n")


def write_summaries(target: Path, recipe: SummarizeConfig, results: list[dict[str, Any]]) -> None:
    from lcm.outputs import write_text_atomically

    report = {"model": recipe.model, "input": recipe.input, "documents": results}
    write_text_atomically(target, dumps(report, ensure_ascii=False, indent=2) + "\n")

