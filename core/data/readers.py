"""Reading text documents from .txt (one per line), .jsonl (a text field) or Parquet (a column).

Every reader yields ``RawDocument(id, text, meta)``. Text is decoded strictly: a file that is
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
                   limit: int | None = None) -> Iterator[RawDocument]:
    """The non-empty documents among the first ``limit`` records of ``path`` (all by default);
    each empty one calls ``on_skip("empty document")`` instead of being yielded."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "input file not found")
    readers = {"txt": _read_txt, "jsonl": _read_jsonl, "parquet": _read_parquet}
    records = readers[detect_format(path, fmt)](path, text_field, id_field)
    for doc in itertools.islice(records, limit):
        if doc.text.strip():
            yield doc
        elif on_skip is not None:
            on_skip(EMPTY_DOCUMENT)


def count_records(path: str | Path, fmt: str = "auto") -> int:
    """How many documents (empty ones included) ``path`` holds, cheaply: for progress bars."""
    path = Path(path)
    if detect_format(path, fmt) == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as f:
        return sum(1 for _ in f)


def _strict_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of each line, decoded as strict UTF-8 (a final newline adds no line)."""
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputFileError(
                    path, f"not valid UTF-8: line {number}, byte offset {offset + exc.start} "
                          f"(byte 0x{raw[exc.start]:02x})") from None
            offset += len(raw)
            yield number, line.rstrip("\r\n")


def _read_txt(path: Path, text_field: str, id_field: str) -> Iterator[RawDocument]:
    for number, line in _strict_lines(path):
        yield RawDocument(f"line{number}", line, {"source": path.name, "line": number})


def parse_json_line(line: str, where: str) -> Any:
    """One JSON value; malformed, an error naming ``where`` and the column. Some of json's
    messages end in "at" ("Unterminated string starting at"): the column completes them."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        problem = exc.msg[:-len(" at")] if exc.msg.endswith(" at") else exc.msg
        raise InputFileError(where, f"malformed JSON: {problem} at column {exc.colno}") from None


def _read_jsonl(path: Path, text_field: str, id_field: str) -> Iterator[RawDocument]:
    for number, line in _strict_lines(path):
        where = f"{path}:{number}"
        if not line.strip():
            yield RawDocument(f"line{number}", "", {})  # a blank line is an empty document
            continue
        record = parse_json_line(line, where)
        if not isinstance(record, dict):
            raise InputFileError(where, f"expected a JSON object, got {type(record).__name__}")
        if text_field not in record:
            raise InputFileError(where, f"missing text field {text_field!r} "
                                        f"(fields: {', '.join(record) or 'none'})")
        text = record[text_field]
        if not isinstance(text, str):
            kind = type(text).__name__
            raise InputFileError(where, f"field {text_field!r} is {kind}, not a string")
        doc_id = str(record[id_field]) if record.get(id_field) is not None else f"line{number}"
        meta = {k: v for k, v in record.items()
                if k not in (text_field, id_field) and isinstance(v, (str, int, float, bool))}
        yield RawDocument(doc_id, text, {"source": path.name, "line": number, **meta})


def _read_parquet(path: Path, text_field: str, id_field: str) -> Iterator[RawDocument]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table_file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputFileError(path, f"not a readable Parquet file: {exc}") from None
    columns = table_file.schema_arrow.names
    if text_field not in columns:
        raise InputFileError(path, f"missing text column {text_field!r} "
                                   f"(columns: {', '.join(columns)})")
    wanted = [text_field] + ([id_field] if id_field in columns else [])
    row = 0
    for batch in table_file.iter_batches(columns=wanted):
        data = batch.to_pydict()
        ids = data.get(id_field, [None] * batch.num_rows)
        for text, doc_id in zip(data[text_field], ids):
            if text is not None and not isinstance(text, str):
                kind = type(text).__name__
                raise InputFileError(f"{path}:row {row}", f"column {text_field!r} holds {kind}, not text")
            yield RawDocument(str(doc_id) if doc_id is not None else f"row{row}", text or "",
                              {"source": path.name, "row": row})
            row += 1
