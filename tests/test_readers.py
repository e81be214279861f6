"""Document readers: .txt, .jsonl and Parquet, and their refusals of bad input."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lcm.data.readers import EMPTY_DOCUMENT, count_records, detect_format, read_documents
from lcm.errors import InputFileError


def read_all(path, **options):
    skipped: list[str] = []
    docs = list(read_documents(path, on_skip=skipped.append, **options))
    return docs, skipped


def test_txt_is_one_document_per_line_and_empty_lines_are_counted(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("First doc. Two sentences.\n\n   \nSecond doc.\n", encoding="utf-8")
    docs, skipped = read_all(path)
    assert [(d.id, d.text) for d in docs] == [("line1", "First doc. Two sentences."),
                                              ("line4", "Second doc.")]
    assert docs[1].meta == {"source": "docs.txt", "line": 4}
    assert skipped == [EMPTY_DOCUMENT, EMPTY_DOCUMENT]
    assert count_records(path) == 4


def test_jsonl_reads_text_id_and_scalar_fields(tmp_path):
    path = tmp_path / "docs.jsonl"
    rows = [{"id": "a", "body": "Hello there.", "title": "A", "tags": ["x"]},
            {"body": "No id here."},
            {"id": "c", "body": "  "}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    docs, skipped = read_all(path, text_field="body")
    assert [(d.id, d.text) for d in docs] == [("a", "Hello there."), ("line2", "No id here.")]
    assert docs[0].meta == {"source": "docs.jsonl", "line": 1, "title": "A"}
    assert skipped == [EMPTY_DOCUMENT]


def test_parquet_reads_a_text_column(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["p", "q", "r"], "text": ["One.", None, "Three."]}), path)
    docs, skipped = read_all(path)
    assert [(d.id, d.text, d.meta["row"]) for d in docs] == [("p", "One.", 0), ("r", "Three.", 2)]
    assert skipped == [EMPTY_DOCUMENT]
    assert count_records(path) == 3


def test_limit_counts_records_including_empty_ones(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("a.\n\nb.\nc.\n", encoding="utf-8")
    docs, skipped = read_all(path, limit=3)
    assert [d.text for d in docs] == ["a.", "b."] and skipped == [EMPTY_DOCUMENT]


def test_format_by_suffix_or_explicit(tmp_path):
    assert detect_format("x.JSONL") == "jsonl" and detect_format("x.parquet") == "parquet"
    assert detect_format("x.data", "txt") == "txt"
    with pytest.raises(InputFileError, match="cannot tell the format"):
        detect_format(tmp_path / "x.data")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputFileError, match="nope.txt: input file not found"):
        list(read_documents(tmp_path / "nope.txt"))


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_non_utf8_file_is_refused_with_its_line_and_offset(tmp_path, suffix):
    path = tmp_path / f"latin1{suffix}"
    first = '{"text": "fine"}\n' if suffix == ".jsonl" else "fine\n"
    path.write_bytes(first.encode() + "caf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(InputFileError) as info:
        list(read_documents(path))
    message = str(info.value)
    assert str(path) in message
    assert f"line 2, byte offset {len(first) + 3} (byte 0xe9)" in message


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(InputFileError, match=r"bad.jsonl:2: malformed JSON"):
        list(read_documents(path))


def test_missing_text_field_names_file_line_and_field(tmp_path):
    path = tmp_path / "nofield.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "x"}\n', encoding="utf-8")
    expected = r"nofield.jsonl:2: missing text field 'text' \(fields: body\)"
    with pytest.raises(InputFileError, match=expected):
        list(read_documents(path))


def test_parquet_without_the_text_column_is_refused(tmp_path):
    path = tmp_path / "cols.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(InputFileError, match="missing text column 'text' \\(columns: body\\)"):
        list(read_documents(path))
