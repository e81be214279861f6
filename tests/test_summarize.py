"""The summarize task: text and recordings in, a summary traced to its sources out, through
`lcm run` with checkpoints saved and loaded like a user's; long sources; bad inputs."""
from __future__ import annotations

import json

import pytest
import torch

import lcm.registry
from lcm.cli import main
from lcm.data.instruction import InstructionFormat, build_pair, build_prompt
from lcm.pipeline.long_input import plan_parts
from lcm.interfaces import ConceptSpace
from lcm.model.checkpoint import save_checkpoint
from lcm.ui.words import format_time
from tests._model_fixtures import TOY_SPACE, model_of, toy_model, toy_normalizer
from tests._summarize_fixtures import (DECODER, SENTENCES, copy_head_plugin, copying_checkpoint,
                                      read_report, write_recipe)
from tests._fake_plugins import plugin_module
from tests._encoder_fixtures import HashedWordsEncoder, ScriptedRecordingEncoder

class SpeechOnlyEncoder(ScriptedRecordingEncoder):
    name = "speech_only"
    encode_document = None  # takes speech, cannot read a whole recording


@pytest.fixture
def registry():
    """The installed plugins plus the test encoders and the copying head."""
    encoders = plugin_module("summarize_test_encoders", register_encoders=lambda register: [
        register(c) for c in (HashedWordsEncoder, ScriptedRecordingEncoder, SpeechOnlyEncoder)])
    registry = lcm.registry.build_registry(extra_plugins=[encoders, copy_head_plugin()])
    return registry


def test_text_summary_stops_at_the_end_concept_and_names_its_sources(tmp_path, registry, capsys):
    checkpoint = copying_checkpoint(tmp_path, registry, picks=[4, 0, 6])
    text = tmp_path / "story.txt"
    text.write_text(" ".join(SENTENCES[:4]) + "\n" + " ".join(SENTENCES[4:]) + "\n")
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(text), as_single_document=True,
                          encoder={"name": "hashed_words"}, decoder=DECODER, max_summary_concepts=5)
    assert main(["run", recipe], registry) == 0

    document, = read_report(tmp_path)["documents"]
    assert [s["text"] for s in document["segments"]] == SENTENCES
    assert [s["index"] for s in document["segments"]] == list(range(len(SENTENCES)))
    summary = document["summary"]
    assert [s["text"] for s in summary] == [SENTENCES[4], SENTENCES[0], SENTENCES[6]]
    assert [s["source_index"] for s in summary] == [4, 0, 6]
    # ~1, not exactly: the normaliser clips a few extreme values on the way into the model
    assert all(s["similarity"] == pytest.approx(1.0, abs=5e-3) for s in summary)
    assert document["parts"] == [{"start": 0, "stop": 8, "stop_reason": "end"}]  # not max_length
    assert document["left_out"] == 0 and "start_s" not in summary[0]
    out = capsys.readouterr().out
    assert "Source" in out and "Summary" in out and "stopped: end" in out
    assert all(f"[{i}] {s}" in out for i, s in enumerate(SENTENCES))
    assert f"1. {SENTENCES[4]}" in out and "← [4]  ████████ 1.00 near copy" in out


def test_random_model_summarises_each_document_from_its_own_sentences(tmp_path, registry, capsys):
    """The pipeline with an untrained mse model: whatever it generates is decoded from the
    document's own (observed) sentences, and provenance points at that very sentence."""
    checkpoint = save_checkpoint(tmp_path / "model", toy_model(seed=3), toy_normalizer())
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "text": " ".join(SENTENCES[:4])}, {"id": "empty", "text": "  "},
        {"id": "b", "text": " ".join(SENTENCES[4:])}]) + "\n")
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(docs),
                          encoder={"name": "hashed_words"}, decoder=DECODER, max_summary_concepts=3,
                          stop={"repetition_threshold": None})
    assert main(["run", recipe], registry) == 0
    documents = read_report(tmp_path)["documents"]
    assert [d["id"] for d in documents] == ["a", "b"]
    for document in documents:
        texts = [s["text"] for s in document["segments"]]
        assert 1 <= len(document["summary"]) <= 3
        for item in document["summary"]:
            assert 0 <= item["source_index"] < len(texts)
            assert item["text"] == texts[item["source_index"]]  # decoded from its own document
    assert "summarised 2 document(s)" in capsys.readouterr().out


def test_skipped_documents_are_counted(tmp_path, registry, capsys):
    checkpoint = copying_checkpoint(tmp_path, registry, picks=[0])
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"text": " "}) + "\n" + json.dumps({"text": SENTENCES[0]}) + "\n")
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(docs),
                          encoder={"name": "hashed_words"}, decoder=DECODER)
    assert main(["run", recipe], registry) == 0
    assert "(skipped: 1 empty document)" in capsys.readouterr().out
    docs.write_text(json.dumps({"text": " "}) + "\n")
    assert main(["run", recipe, "overwrite=true"], registry) == 2
    assert "nothing to summarise (1 empty document)" in capsys.readouterr().err


@pytest.mark.parametrize("mode, picks, parts", [
    ("chunk", [0, 3, 7], [(0, 3), (3, 7), (7, 10)]),  # each part's first sentence
    ("truncate", [0], [(0, 4)]),
])
def test_a_long_source_is_chunked_or_truncated(tmp_path, registry, mode, picks, parts):
    checkpoint = copying_checkpoint(tmp_path, registry, picks=[0])
    sentences = [f"Sentence number {w} says {w} things." for w in
                 "one two three four five six seven eight nine ten".split()]
    text = tmp_path / "long.txt"
    text.write_text(" ".join(sentences))
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(text), as_single_document=True,
                          encoder={"name": "hashed_words"}, decoder=DECODER,
                          max_source_concepts=4, long_input=mode)
    assert main(["run", recipe], registry) == 0
    document, = read_report(tmp_path)["documents"]
    assert [(p["start"], p["stop"]) for p in document["parts"]] == parts
    assert [s["source_index"] for s in document["summary"]] == picks
    assert [s["part"] for s in document["summary"]] == list(range(len(picks)))
    assert document["left_out"] == (6 if mode == "truncate" else 0)


def test_the_summary_rules_hold_across_the_parts_of_a_long_source(tmp_path, registry):
    """Each part's first sentence is the same text: the second part's summary sentence may not
    say it again nor cover a segment already covered."""
    checkpoint = copying_checkpoint(tmp_path, registry, picks=[0])
    text = tmp_path / "long.txt"
    text.write_text(" ".join(SENTENCES[:4] * 2))
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(text), as_single_document=True,
                          encoder={"name": "hashed_words"}, decoder=DECODER,
                          max_source_concepts=4, long_input="chunk")
    assert main(["run", recipe], registry) == 0
    document, = read_report(tmp_path)["documents"]
    first, second = document["summary"]
    assert (first["part"], second["part"]) == (0, 1)
    assert first["text"] == SENTENCES[0] and first["source_index"] == 0
    assert second["text"] != first["text"] and second["source_index"] not in (0, 4)
    assert second["fallback"] and second["support"]["supported"]


def test_recording_summary_shows_transcript_times(tmp_path, registry, capsys):
    checkpoint = copying_checkpoint(tmp_path, registry, picks=[2])
    recording = tmp_path / "talk.json"
    recording.write_text(json.dumps([[s, 2.0 * i + 0.3, 2.0 * i + 1.8]
                                     for i, s in enumerate(SENTENCES[:4])]))
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(recording),
                          encoder={"name": "scripted_recording"},
                          text_encoder={"name": "hashed_words"}, decoder=DECODER)
    assert main(["run", recipe], registry) == 0
    document, = read_report(tmp_path)["documents"]
    assert document["modality"] == "speech"
    assert document["segments"][1] == {"index": 1, "text": SENTENCES[1], "start_s": 2.3, "end_s": 3.8}
    item, = document["summary"]
    assert (item["text"], item["source_index"], item["start_s"], item["end_s"]) == (SENTENCES[2], 2, 4.3, 5.8)
    out = capsys.readouterr().out
    assert "Transcript" in out
    assert f"[1] 00:02.3–00:03.8 {SENTENCES[1]}" in out
    assert "← [2] 00:04.3–00:05.8  ████████ 1.00 near copy" in out


def test_instruction_prompt_layout():
    source, target, end, suffix = torch.randn(3, 4), torch.randn(2, 4), torch.randn(4), torch.randn(4)
    assert torch.equal(build_prompt(source), source)
    prompt = build_prompt(source, suffix)
    assert prompt.shape == (4, 4) and torch.equal(prompt[-1], suffix)
    sequence, learned = build_pair(source, target, end, suffix)
    assert torch.equal(sequence, torch.cat([source, suffix[None], target, end[None]]))
    assert learned.tolist() == [False] * 4 + [True] * 3
    assert InstructionFormat.from_checkpoint({}) is None
    assert InstructionFormat.from_checkpoint({"instruction": {"source_suffix": "Summary:"}}) == \
        InstructionFormat("Summary:", "End of text.")


def test_the_recorded_source_suffix_ends_the_prompt(tmp_path, registry):
    """A model fine-tuned with a suffix gets it after the source: the copying head, told to copy
    the prompt's last concept, emits the suffix sentence's concept."""
    suffix = SENTENCES[5]  # a sentence the source does not hold, so the decoder can name it
    checkpoint = copying_checkpoint(tmp_path, registry, picks=[-1],
                                    instruction=InstructionFormat(suffix).to_meta())
    text = tmp_path / "doc.txt"
    text.write_text(" ".join(SENTENCES[:3]) + " " + suffix.replace(".", " again."))
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(text), as_single_document=True,
                          encoder={"name": "hashed_words"}, decoder=DECODER,
                          stop={"repetition_threshold": None})  # it copies the prompt's last concept
    assert main(["run", recipe], registry) == 0
    item, = read_report(tmp_path)["documents"][0]["summary"]
    assert item["source_index"] == 3 and item["similarity"] < 0.999  # near the source's echo of it


def test_plan_parts_and_time_labels():
    for length in range(1, 40):
        for cap in range(1, 12):
            parts = plan_parts(length, cap, "chunk")
            assert parts[0].start == 0 and parts[-1].stop == length
            assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
            assert all(0 < p.stop - p.start <= cap for p in parts)
            assert len(parts) == -(-length // cap)
    assert [(p.start, p.stop) for p in plan_parts(10, 4, "truncate")] == [(0, 4)]
    assert format_time(4.25) == "00:04.2" and format_time(3725.0) == "1:02:05.0"


# --------------------------------------------------------------------------- bad inputs

def test_an_empty_file_is_refused_in_one_line(tmp_path, registry, capsys):
    checkpoint = copying_checkpoint(tmp_path, registry, picks=[0])
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(empty),
                          encoder={"name": "scripted_recording"}, text_encoder={"name": "hashed_words"},
                          decoder=DECODER)
    assert main(["run", recipe], registry) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {empty}: empty file (0 bytes)"


def test_a_recording_without_speech_is_refused(tmp_path, registry, capsys):
    checkpoint = copying_checkpoint(tmp_path, registry, picks=[0])
    silent = tmp_path / "silence.json"
    silent.write_text("[]")  # the encoder finds no utterance
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(silent),
                          encoder={"name": "scripted_recording"}, text_encoder={"name": "hashed_words"},
                          decoder=DECODER)
    assert main(["run", recipe], registry) == 2
    assert "no speech found in the recording" in capsys.readouterr().err


def test_speech_encoders_must_read_whole_recordings_and_need_a_text_encoder(tmp_path, registry, capsys):
    checkpoint = copying_checkpoint(tmp_path, registry, picks=[0])
    recording = tmp_path / "talk.json"
    recording.write_text(json.dumps([[SENTENCES[0], 0.0, 1.0]]))
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(recording),
                          encoder={"name": "speech_only"}, decoder=DECODER)
    assert main(["run", recipe], registry) == 2
    assert "cannot read a whole recording" in capsys.readouterr().err
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(recording),
                          encoder={"name": "scripted_recording"}, decoder=DECODER)
    assert main(["run", recipe], registry) == 2
    assert "set text_encoder" in capsys.readouterr().err


def test_a_checkpoint_of_another_space_is_refused(tmp_path, registry, capsys):
    other = ConceptSpace("other_space", TOY_SPACE.dim)
    checkpoint = save_checkpoint(tmp_path / "model", toy_model(space=other), toy_normalizer(other))
    text = tmp_path / "doc.txt"
    text.write_text(SENTENCES[0] + "\n")
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(text),
                          encoder={"name": "hashed_words"}, decoder=DECODER)
    assert main(["run", recipe], registry) == 2
    err = capsys.readouterr().err
    assert "concept spaces differ" in err and "other_space" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- real speech

SPOKEN = ["The lighthouse keeper climbed the stairs every night.",
          "Ships from the north sailed past the rocks.",
          "In the morning he wrote the weather in a book."]
MINILM = ConceptSpace("minilm", 384)


def cascade_recipe(tmp_path, registry, recording, picks):
    """A summarize recipe on ``recording`` with whisper_cascade + minilm and a copying model."""
    from lcm.plugins.encoders.minilm import MiniLMEncoder

    normalizer = toy_normalizer(MINILM)
    end = normalizer.normalize(MiniLMEncoder().encode(["End of text."])[0]).tolist()
    model = model_of("toy", {}, {"name": "copy_source", "picks": picks, "end": end}, MINILM,
                        registry=registry)
    checkpoint = save_checkpoint(tmp_path / "model", model, normalizer)
    return write_recipe(tmp_path, model=str(checkpoint), input=str(recording),
                        encoder={"name": "whisper_cascade", "text_encoder": {"name": "minilm"}},
                        text_encoder={"name": "minilm"}, decoder={"name": "retrieval"})


def test_espeak_recording_is_transcribed_and_summarised(tmp_path, registry, capsys):
    from tests._sonar_fixtures import speech_recording

    recording, spans = speech_recording(tmp_path, SPOKEN)
    assert main(["run", cascade_recipe(tmp_path, registry, recording, picks=[1])], registry) == 0
    document, = read_report(tmp_path)["documents"]
    segments = document["segments"]
    assert len(segments) == 3
    for segment, sentence, (start, end) in zip(segments, SPOKEN, spans):
        heard = set(segment["text"].lower().strip(".").split())
        assert len(heard & set(sentence.lower().strip(".").split())) >= 3, segment["text"]
        assert abs(segment["start_s"] - start) < 0.3 and abs(segment["end_s"] - end) < 0.3
    item, = document["summary"]
    assert item["text"] == segments[1]["text"] and item["source_index"] == 1
    assert (item["start_s"], item["end_s"]) == (segments[1]["start_s"], segments[1]["end_s"])
    assert document["parts"][0]["stop_reason"] == "end"
    out = capsys.readouterr().out
    assert "Transcript" in out and f"1. {segments[1]['text']}" in out


def test_a_silent_recording_is_refused_in_one_line(tmp_path, registry, capsys):
    import numpy as np
    import soundfile as sf

    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(16_000 * 3, dtype=np.float32), 16_000)
    assert main(["run", cascade_recipe(tmp_path, registry, silent, picks=[0])], registry) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"error: {silent}: silent")
