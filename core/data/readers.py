"""Reading text documents from .txt (one per line), .jsonl (a text field) or Parquet (a column).

Every reader yields ``RawDocument(id, text, meta)``; with a ``sentences_field`` (.jsonl or
Parquet, as in the reference implementation's layout: a list column of sentences beside the
text) the document's sentences come from that list instead of a segmenter. A reader can start
at a record (``start``) without decoding the ones before it, so several processes can each read
their own part of one file. Text is decoded strictly: a file that is
not UTF-8 is refused with the file, line and byte offset of the first bad byte, never guessed
at. Empty or whitespace-only documents are not errors; they are left out and reported through
``on_skip`` so the caller can count them (nothing is dropped silently).
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from lcm.errors import InputFileError

FORMATS = ("auto", "txt", "jsonl", "parquet")
EMPTY_DOCUMENT = "empty document"
_SUFFIX_FORMATS = {".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}

SkipCallback = Callable[[str], None]


class RawDocument(NamedTuple):
    """One document as read from its file, before segmentation."""

    id: str
    text: str
    meta: dict[str, Any]
    sentences: list[str] | None = None
    """Sentences the input gave (a list column); None: segment ``text``."""


def detect_format(path: str | Path, fmt: str = "auto") -> str:
    """The reader for ``path``: ``fmt`` itself, or chosen by suffix when ``fmt`` is "auto"."""
    if Path(path).is_dir():
        raise InputFileError(path, "is a folder; give one file of documents (.txt with one per "
                                   "line, .jsonl or .parquet)")
    if fmt != "auto":
        if fmt not in FORMATS:
            raise InputFileError(path, f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        known = ", ".join(sorted(_SUFFIX_FORMATS))
        raise InputFileError(path, f"cannot tell the format from suffix {suffix!r} "
                                   f"(known: {known}); set format explicitly")
    return _SUFFIX_FORMATS[suffix]


def read_documents(path: str | Path, fmt: str = "auto", text_field: str = "text",
                   id_field: str = "id", on_skip: SkipCallback | None = None,
                   limit: int | None = None, *, start: int = 0,
                   sentences_field: str | None = None) -> Iterator[RawDocument]:
    """The non-empty documents among the ``limit`` records of ``path`` from record ``start``
    (all by default); each empty one calls ``on_skip("empty document")`` instead."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "input file not found")
    fmt = detect_format(path, fmt)
    if sentences_field is not None and fmt == "txt":
        raise InputFileError(path, f"sentences_field {sentences_field!r} needs .jsonl or "
                                   f".parquet input (a list of sentences per record)")
    readers = {"txt": _read_txt, "jsonl": _read_jsonl, "parquet": _read_parquet}
    records = readers[fmt](path, _Fields(text_field, id_field, sentences_field), start)
    for doc in itertools.islice(records, limit):
        if doc.text.strip():
            yield doc
        elif on_skip is not None:
            on_skip(EMPTY_DOCUMENT)


class _Fields(NamedTuple):
    """The fields (or columns) a reader takes a document's text, id and sentences from."""

    text: str
    id: str
    sentences: str | None


def count_records(path: str | Path, fmt: str = "auto") -> int:
    """How many documents (empty ones included) ``path`` holds, cheaply: for progress bars."""
    path = Path(path)
    if detect_format(path, fmt) == "parquet":
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as f:
        return sum(1 for _ in f)


def _strict_lines(path: Path, start: int = 0) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of each line after the first ``start`` (which are not decoded),
    decoded as strict UTF-8 (a final newline adds no line)."""
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if number <= start:
                offset += len(raw)
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputFileError(
                    path, f"not valid UTF-8: line {number}, byte offset {offset + exc.start} "
                          f"(byte 0x{raw[exc.start]:02x})") from None
            offset += len(raw)
            yield number, line.rstrip("\r\n")


def _read_txt(path: Path, fields: _Fields, start: int) -> Iterator[RawDocument]:
    for number, line in _strict_lines(path, start):
        yield RawDocument(f"line{number}", line, {"source": path.name, "line": number})


def parse_json_line(line: str, where: str) -> Any:
    """One JSON value; malformed, an error naming ``where`` and the column. Some of json's
    messages end in "at" ("Unterminated string starting at"): the column completes them."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        problem = exc.msg[:-len(" at")] if exc.msg.endswith(" at") else exc.msg
        raise InputFileError(where, f"malformed JSON: {problem} at column {exc.colno}") from None


def _read_jsonl(path: Path, fields: _Fields, start: int) -> Iterator[RawDocument]:
    for number, line in _strict_lines(path, start):
        where = f"{path}:{number}"
        if not line.strip():
            yield RawDocument(f"line{number}", "", {})  # a blank line is an empty document
            continue
        record = parse_json_line(line, where)
        if not isinstance(record, dict):
            raise InputFileError(where, f"expected a JSON object, got {type(record).__name__}")
        content = fields.sentences or fields.text
        if content not in record:
            kind = "sentences" if fields.sentences else "text"
            raise InputFileError(where, f"missing {kind} field {content!r} "
                                        f"(fields: {', '.join(record) or 'none'})")
        text, sentences = _text_and_sentences(record[content], fields, f"field {content!r}", where,
                                              nullable=False)
        doc_id = str(record[fields.id]) if record.get(fields.id) is not None else f"line{number}"
        meta = {k: v for k, v in record.items()
                if k not in (content, fields.id) and isinstance(v, (str, int, float, bool))}
        yield RawDocument(doc_id, text, {"source": path.name, "line": number, **meta}, sentences)


def _text_and_sentences(value: Any, fields: _Fields, what: str, where: str, nullable: bool
                        ) -> tuple[str, list[str] | None]:
    """A record's text, and its sentences when they come from a list field; checked. A null
    (``nullable``: Parquet's missing value) is an empty document."""
    if value is None and nullable:
        return "", None if fields.sentences is None else []
    if fields.sentences is None:
        if not isinstance(value, str):
            raise InputFileError(where, f"{what} is {type(value).__name__}, not a string")
        return value, None
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InputFileError(where, f"{what} is not a list of strings (the sentences)")
    sentences = [s.strip() for s in value if s.strip()]
    return " ".join(sentences), sentences


def _read_parquet(path: Path, fields: _Fields, start: int) -> Iterator[RawDocument]:
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table_file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputFileError(path, f"not a readable Parquet file: {exc}") from None
    columns = table_file.schema_arrow.names
    content = fields.sentences or fields.text
    if content not in columns:
        kind = "sentences" if fields.sentences else "text"
        raise InputFileError(path, f"missing {kind} column {content!r} "
                                   f"(columns: {', '.join(columns)})")
    wanted = [content] + ([fields.id] if fields.id in columns else [])
    groups, row = _row_groups_from(table_file.metadata, start)
    for batch in table_file.iter_batches(columns=wanted, row_groups=groups):
        data = batch.to_pydict()
        ids = data.get(fields.id, [None] * batch.num_rows)
        for value, doc_id in zip(data[content], ids):
            if row >= start:
                text, sentences = _text_and_sentences(value, fields, f"column {content!r}",
                                                       f"{path}:row {row}", nullable=True)
                yield RawDocument(str(doc_id) if doc_id is not None else f"row{row}", text,
                                  {"source": path.name, "row": row}, sentences)
            row += 1


def _row_groups_from(metadata: Any, start: int) -> tuple[list[int], int]:
    """The row groups holding row ``start`` and after, and the first row of the first of them:
    the groups before are not read at all."""
    first_row = 0
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        if first_row + rows > start:
            return list(range(group, metadata.num_row_groups)), first_row
        first_row += rows
    return [], first_row
