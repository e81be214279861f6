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


def test_reading_starts_at_a_record_with_file_line_numbers(tmp_path):
    txt = tmp_path / "docs.txt"
    txt.write_text("a.\nb.\n\nc.\nd.\n", encoding="utf-8")
    docs, skipped = read_all(txt, start=2, limit=2)
    assert [(d.id, d.text) for d in docs] == [("line4", "c.")] and skipped == [EMPTY_DOCUMENT]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"text": f"t{i}."}) + "\n" for i in range(5)))
    assert [d.id for d in read_all(jsonl, start=3)[0]] == ["line4", "line5"]


def test_parquet_starts_at_a_row_past_whole_row_groups(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"text": [f"Doc {i}." for i in range(10)]}), path, row_group_size=3)
    docs, _ = read_all(path, start=4, limit=4)
    assert [(d.id, d.text, d.meta["row"]) for d in docs] == [
        (f"row{i}", f"Doc {i}.", i) for i in range(4, 8)]


def test_sentences_come_from_a_list_column_in_the_reference_layout(tmp_path):
    path = tmp_path / "meta.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["One. Two.", "", "Three."],
                             "text_sentences": [["One.", " Two. "], [], None]}), path)
    docs, skipped = read_all(path, sentences_field="text_sentences")
    assert [(d.id, d.sentences, d.text) for d in docs] == [("a", ["One.", "Two."], "One. Two.")]
    assert skipped == [EMPTY_DOCUMENT, EMPTY_DOCUMENT]
    jsonl = tmp_path / "meta.jsonl"
    jsonl.write_text(json.dumps({"text_sentences": ["Hi.", "There."], "title": "T"}) + "\n")
    [doc], _ = read_all(jsonl, sentences_field="text_sentences")
    assert doc.sentences == ["Hi.", "There."] and doc.meta["title"] == "T"


def test_a_sentences_field_that_is_not_a_list_of_strings_is_refused(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text_sentences": "One. Two."}) + "\n")
    with pytest.raises(InputFileError, match=r"bad.jsonl:1: field 'text_sentences' is not a list "
                                             r"of strings"):
        read_all(path, sentences_field="text_sentences")
    txt = tmp_path / "x.txt"
    txt.write_text("a\n")
    with pytest.raises(InputFileError, match="sentences_field 'text_sentences' needs .jsonl or"):
        read_all(txt, sentences_field="text_sentences")


def test_an_input_is_a_file_a_folder_or_a_glob(tmp_path):
    from lcm.data.inputs import input_files

    for name in ("b/2.jsonl", "a.txt", "b/1.parquet", ".hidden/x.txt", "notes.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    assert input_files(str(tmp_path)) == [tmp_path / "a.txt", tmp_path / "b/1.parquet",
                                          tmp_path / "b/2.jsonl"]
    assert input_files(str(tmp_path / "**" / "*.jsonl")) == [tmp_path / "b/2.jsonl"]
    assert input_files(str(tmp_path / "a.txt")) == [tmp_path / "a.txt"]
    with pytest.raises(InputFileError, match=r"\*.csv: no file matches this pattern"):
        input_files(str(tmp_path / "*.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="empty: folder holds no document files"):
        input_files(str(tmp_path / "empty"))


def test_pieces_cut_every_file_by_records_up_to_the_limit(tmp_path):
    from lcm.data.inputs import Piece, plan_pieces, rank_pieces

    first, second = tmp_path / "1.txt", tmp_path / "2.txt"
    first.write_text("a\n" * 5)
    second.write_text("b\n" * 3)
    pieces = plan_pieces([first, second], "auto", records_per_piece=2)
    assert [(p.index, p.file.name, p.start, p.stop) for p in pieces] == [
        (0, "1.txt", 0, 2), (1, "1.txt", 2, 4), (2, "1.txt", 4, 5), (3, "2.txt", 0, 2),
        (4, "2.txt", 2, 3)]
    assert [p.index for p in rank_pieces(pieces, 1, 2)] == [1, 3]
    assert plan_pieces([first, second], "auto", 2, limit=6)[-1] == Piece(3, second, 0, 1)
