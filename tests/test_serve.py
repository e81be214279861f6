"""`lcm serve` without a browser: the service runs requests through the same concept pipeline
as `lcm run`, built once, with the page's options over the pipeline's, errors become one-line messages, progress
moves by stage with a time left, the page's HTML links the summary to its sources, and the
page template is served without its CDN script."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from lcm.cli import main
from lcm.serve.offline import strip_external
from lcm.serve.page import respond
from lcm.serve.progress import StageHistory, Tracker
from lcm.serve.service import Options
from tests._serve_fixtures import last, registry, service_of, text_input  # noqa: F401 (fixture)
from tests._summarize_fixtures import DECODER, SENTENCES, copying_checkpoint, write_recipe

SPOKEN = [["The lighthouse stood on a cliff.", 0.5, 2.1], ["Ships passed it every night.", 2.6, 4.0],
          ["A keeper lived inside with his dog.", 4.4, 6.2]]


def test_pasted_text_is_summarised_with_the_page_options(tmp_path, registry):
    service = service_of(tmp_path, registry, picks=(4, 0, 6))
    defaults = service.defaults()
    assert defaults.summary_length == 4 and defaults.end_rule and defaults.guidance_scale is None
    status, result = last(respond(service, None, " ".join(SENTENCES), defaults, None))
    assert "Done in" in status
    assert [SENTENCES[i] in result for i in (4, 0, 6)] == [True] * 3
    assert result.count('class="lcm-item"') == 3 and 'id="lcm-concepts"' in result  # end concept after 3
    shorter = Options(1, False, defaults.decoder)
    _, result = last(respond(service, None, " ".join(SENTENCES), shorter, None))
    assert result.count('class="lcm-item"') == 1 and "stopped: max_length" in result


def test_request_options_lay_over_the_recipe_and_are_checked(tmp_path, registry):
    service = service_of(tmp_path, registry)
    laid, decoder = service.request_options(Options(2, False, service.defaults().decoder))
    assert laid.max_concepts == 2 and laid.stop.end_sentence is None
    assert decoder is service.pipeline.decoder
    assert service.pipeline.options.max_concepts == 4 and service.pipeline.options.stop.end_sentence
    for bad, words in ((Options(0, True, service.defaults().decoder), "summary length"),
                       (Options(2, True, "no such decoder"), "unknown decoder")):
        status, result = last(respond(service, None, "Some text.", bad, None))
        assert words in status and "lcm-error" in status and result == ""


def test_requests_reuse_the_pipeline_built_at_start(tmp_path, registry, monkeypatch):
    """The model, encoder and decoder checks are made once; a request only lays its options."""
    import lcm.pipeline.pipeline as pipeline
    from lcm.components import ComponentSpec

    service = service_of(tmp_path, registry, picks=(4, 0, 6))
    loads, created = [], []
    real_load, real_create = pipeline.load_checkpoint, ComponentSpec.create
    monkeypatch.setattr(pipeline, "load_checkpoint", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    monkeypatch.setattr(ComponentSpec, "create", lambda spec: created.append(spec.name) or real_create(spec))
    encoder = service.pipeline.encoder
    for length, text in ((3, SENTENCES), (1, SENTENCES), (3, SENTENCES[1:])):
        status, result = last(respond(service, None, " ".join(text),
                                      Options(length, True, service.defaults().decoder), None))
        assert "Done in" in status
    assert loads == [] and created == [] and service.pipeline.encoder is encoder
    assert result.count('class="lcm-item"') == 3  # the second source's own sentences only:
    assert SENTENCES[0] not in result  # the decoder forgot the first source's


def test_a_recording_shows_times_that_play_their_span(tmp_path, registry):
    service = service_of(tmp_path, registry, encoder="scripted_recording", picks=(2,))
    recording = tmp_path / "talk.json"
    recording.write_text(json.dumps(SPOKEN))
    status, result = last(respond(service, str(recording), "", service.defaults(), None))
    assert "Done in" in status and "Transcript" in result
    assert 'onclick="lcmPlay(4.400, 6.200)"' in result and "00:04.4–00:06.2" in result
    assert 'id="lcm-player"' in result and "talk.json" in result


def test_bad_input_is_one_line_on_the_page_and_the_service_keeps_serving(tmp_path, registry):
    service = service_of(tmp_path, registry)
    status, _ = last(respond(service, None, "   ", service.defaults(), None))
    assert "Give a recording" in status
    status, _ = last(respond(service, str(tmp_path / "gone.wav"), "", service.defaults(), None))
    assert "lcm-error" in status and "reads text, not recordings" in status  # a text recipe
    speech = service_of(tmp_path / "speech", registry, encoder="scripted_recording")
    status, _ = last(respond(speech, str(tmp_path / "gone.wav"), "", speech.defaults(), None))
    assert "gone.wav: not a file" in status and str(tmp_path) not in status
    status, _ = last(respond(service, None, " ".join(SENTENCES), service.defaults(), None))
    assert "Done in" in status


def test_stages_advance_and_time_left_comes_from_earlier_requests():
    history = StageHistory()
    first = Tracker(history, "encoding")
    assert first.status().stage == "encoding" and first.status().left_s is None
    first.stage("generating")
    first.stage("encoding")  # never backwards
    assert first.status().stage == "generating"
    first.stage("decoding")
    first.finish()
    second = Tracker(history, "encoding")
    status = second.status()
    assert status.left_s is not None and 0 <= status.fraction <= 1


def test_the_page_template_loses_its_cdn_script_and_font_preconnections():
    import gradio

    template = Path(gradio.__file__).parent / "templates" / "frontend" / "index.html"
    html = strip_external(template.read_bytes())
    assert b"cdnjs" not in html and b"preconnect" not in html and b"<gradio-app" in html


def test_serve_refuses_other_tasks_and_busy_ports_in_one_line(tmp_path, registry, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(json.dumps({"task": "fit_normalizer"}))
    assert main(["serve", str(other)], registry) == 2
    checkpoint = copying_checkpoint(tmp_path, registry, picks=[0])
    recipe = write_recipe(tmp_path, model=str(checkpoint), input=str(text_input(tmp_path)),
                          encoder={"name": "hashed_words"}, decoder=DECODER)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        assert main(["serve", recipe, "--port", str(held.getsockname()[1])], registry) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 2
    assert "runs summarize recipes; this one's task is 'fit_normalizer'" in errors[0]
    assert "in use" in errors[1]


def test_the_stage_follows_the_newest_open_bar_of_the_requests_terminal():
    from lcm.ui import Terminal

    terminal = Terminal(mode="quiet")
    tracker = Tracker(StageHistory(), "segmenting", terminal)
    with terminal.progress("scan talk.flac", 30, "s"):
        assert tracker.status().stage == "segmenting"
        with terminal.progress("whisper talk.flac", 4, "utterances") as bar:
            bar.update(1)
            status = tracker.status()
            assert status.stage == "recognising" and status.detail == "1/4 utterances"
    assert tracker.status().stage == "encoding"  # recognition over, no bar: encoding


def test_a_model_that_learned_through_its_decoder_is_offered_that_decoder_only(registry):
    from lcm.components import resolve
    from lcm.interfaces import ConceptSpace
    from lcm.pipeline.selector import decoder_menu

    own = resolve(registry, "decoder", {"name": "sonar_text"})
    space = ConceptSpace("hashed", 16)
    assert list(decoder_menu(own, registry, space, None)) == [
        "sonar_text", "retrieval (nearest source sentence)"]
    learned_through = {"decoder": "sonar_text", "model": "text_sonar_basic_decoder"}
    assert list(decoder_menu(own, registry, space, learned_through)) == ["sonar_text"]
