"""The ``summarize`` task: a recording or a text in; its summary out, each summary sentence
traced to the source segment it came from.

The source: with a speech encoder that reads recordings itself (``lcm.interfaces.DocumentEncoder``)
the input is one recording and its utterances (transcripts, times) are the source concepts; with
a text encoder the input holds text documents (one per line of a .txt, or .jsonl/.parquet
records, or a whole .txt as ONE document with ``as_single_document``), segmented as ``prepare``
segments them. This task reads the input and writes the output; the concept pipeline
(``lcm.pipeline``) does the summarising: the prompt laid out as the model was fine-tuned, summary
concepts generated until the end concept or ``max_summary_concepts``, decoded, and each traced
to its source segment. Printed readably and written as JSON.
"""
from __future__ import annotations

from lcm.json_output import dumps
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from rich.markup import escape

from lcm.data.document_input import DocumentInput
from lcm.data.readers import RawDocument
from lcm.errors import InputFileError, UserError
from lcm.fields import ComponentSection, component, path
from lcm.interfaces import RunContext, Task
from lcm.outputs import write_text_atomically
from lcm.pipeline.options import ContinuationOptions, SummaryOptions
from lcm.pipeline.pipeline import ConceptPipeline
from lcm.pipeline.salience import document_title
from lcm.pipeline.selector import describe_decoding
from lcm.pipeline.sources import NO_SENTENCES, SourceDocument, check_input_file
from lcm.ui import Terminal, current
from lcm.ui.scale import LEGEND
from lcm.ui.scale import describe as describe_cosine
from lcm.ui.words import format_counts, format_time

NO_REFERENCE = "no reference text"


@dataclass
class SummarizeConfig(DocumentInput, ContinuationOptions, SummaryOptions):
    model: str = path(must_exist=True, space_source=True, help="checkpoint of a summarisation model")
    input: str = path(must_exist=True, help="a recording (with a speech encoder) or a text file: "
                                            ".txt (one document per line), .jsonl or .parquet")
    output: Optional[str] = path(None, output=True, help="JSON of the segments, summaries and provenance")
    encoder: ComponentSection = component("encoder", default="minilm", help="reads the input")
    text_encoder: Optional[ComponentSection] = component("encoder", help=(
        "encodes the end sentence (and the model's source suffix) when `encoder` takes no text; "
        "a text encoder of the same space"))
    decoder: ComponentSection = component("decoder", default="retrieval")
    as_single_document: bool = False
    """Read a .txt input as ONE document instead of one document per line."""
    reference_field: Optional[str] = None
    """The .jsonl field holding a reference summary; with ``evaluation_output``, for scoring."""
    evaluation_output: Optional[str] = path(None, output=True, help=(
        "JSONL of {id, source, reference, prediction} per document: the input of `evaluate` "
        "mode generation (needs reference_field)"))


class Summarize(Task):
    name = "summarize"
    description = "Summarise a recording or a text with a fine-tuned model; show where each sentence came from."
    Config = SummarizeConfig

    def run(self, recipe: SummarizeConfig, context: RunContext) -> list[dict[str, Any]]:
        started = time.perf_counter()
        source = check_input_file(recipe.input)
        if recipe.evaluation_output and not recipe.reference_field:
            raise UserError("evaluation_output needs reference_field (the input's reference summaries)")
        pipeline = ConceptPipeline.from_summarize_recipe(recipe, context.registry)
        pipeline.source_cap(pipeline.options)  # refuses a bad length before any input is read
        skipped: Counter[str] = Counter()
        terminal = context.console
        results = []
        for doc in _documents(pipeline, recipe, source, skipped, terminal):
            result = pipeline.summarise(doc).record
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
        terminal.outcome(*closing_line(results, skipped, time.perf_counter() - started,
                                       recipe.output))
        return results

def closing_line(results: list[dict[str, Any]], skipped: Counter, seconds: float,
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


# --------------------------------------------------------------------------- inputs

def _documents(pipeline: ConceptPipeline, recipe: SummarizeConfig, source: Path, skipped: Counter,
               terminal: Terminal) -> Iterator[SourceDocument]:
    """The sources of the input file: one recording, or its text documents (progress on
    ``terminal``)."""
    if pipeline.reads_recordings:
        return iter([pipeline.read_recording(source, terminal)])
    return _text_documents(pipeline, recipe, source, skipped, terminal)


def _text_documents(pipeline: ConceptPipeline, recipe: SummarizeConfig, source: Path, skipped: Counter,
                    terminal: Terminal) -> Iterator[SourceDocument]:
    """The input's text documents, segmented and encoded; those left out are counted."""
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
            yield SourceDocument(raw.id, sentences, pipeline.encode(sentences, bar),
                                 reference=reference,
                                 title=document_title(raw.meta, recipe.title_field))


def _whole_text(source: Path) -> str:
    try:
        text = source.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(source, f"not valid UTF-8 text: byte offset {exc.start}") from None
    if not text.strip():
        raise InputFileError(source, "holds no text (only whitespace)")
    return text


# --------------------------------------------------------------------------- output

def _label(index: int, item: dict[str, Any]) -> str:
    """``[index]``, with the time span for a recording's segment."""
    if item.get("start_s") is None:
        return f"[{index}]"
    return f"[{index}] {format_time(item['start_s'])}–{format_time(item['end_s'])}"


def print_summary(result: dict[str, Any], terminal: Terminal) -> None:
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
    lines = [dumps({"id": r["id"], "source": [s["text"] for s in r["segments"]],
                         "reference": r["reference"],
                         "prediction": [s["text"] for s in r["summary"]]}, current().note,
                   ensure_ascii=False)
             for r in results]
    write_text_atomically(target, "\n".join(lines) + "\n")


def write_summaries(target: Path, recipe: SummarizeConfig, results: list[dict[str, Any]]) -> None:
    report = {"model": recipe.model, "input": recipe.input, "documents": results}
    write_text_atomically(target, dumps(report, current().note, ensure_ascii=False,
                                        indent=2) + "\n")

