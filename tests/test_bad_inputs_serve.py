"""The bad-input matrix, ``lcm serve``: invisible or invalid pasted text is one line, a
cancelled or abandoned request stops at its next progress step and frees the worker, an
upload is removed when its request fails, and recordings get a default duration limit
(issue 19, items 5 and 9)."""
from __future__ import annotations

import time

import pytest

from lcm.serve.page import respond
from lcm.serve.progress import StageHistory, Tracker
from lcm.serve.requests import (ABANDONED_S, CancellableTerminal, RequestCancelled, UploadFolder,
                                checked_text, with_duration_limit)
from lcm.ui import using
from lcm.ui.terminal import progress
from tests._serve_fixtures import last, registry, service_of  # noqa: F401 (the fixture)


@pytest.mark.parametrize("text, message", [
    ("\u200b\u200c\u200d\ufeff \u2060", "no text given: paste some, or give a recording"),
    ("Fine text \ud800 here.", "the text holds an unpaired surrogate (U+D800) at character 11: "
                               "it is not valid Unicode; paste it again from its source"),
])
def test_pasted_text_that_is_no_text_is_one_line_on_the_page(tmp_path, registry, text, message):
    service = service_of(tmp_path, registry)
    status, result = last(respond(service, None, text, service.defaults(), None))
    assert "lcm-error" in status and message in status and result == ""
    with pytest.raises(Exception) as caught:
        checked_text(text)
    assert str(caught.value) == message and caught.value.exit_code == 2


def test_a_cancelled_request_stops_at_its_next_progress_step():
    terminal, tracker = CancellableTerminal(), Tracker(StageHistory())
    terminal.begin(tracker)
    steps = 0
    with using(terminal), pytest.raises(RequestCancelled):
        with progress("encode", 1000, "batches") as bar:
            for _ in range(1000):
                steps += 1
                if steps == 3:
                    tracker.cancel()
                bar.update(1)
    assert steps == 3


def test_a_request_nobody_watches_any_more_is_abandoned():
    terminal, tracker = CancellableTerminal(), Tracker(StageHistory())
    terminal.begin(tracker)
    tracker.status()
    tracker.seen -= ABANDONED_S + 1  # the page stopped asking
    with using(terminal), pytest.raises(RequestCancelled):
        progress("scan", 10, "s").update(1)


def test_a_page_that_leaves_cancels_its_request_and_frees_the_worker(tmp_path, registry):
    service = service_of(tmp_path, registry)
    text = " ".join(["The keeper climbed the stairs."] * 50)
    updates = respond(service, None, text, service.defaults(), None)
    next(updates)
    updates.close()  # the user closed the tab
    started = time.monotonic()
    status, _ = last(respond(service, None, "A short text. It has two sentences.",
                             service.defaults(), None))
    assert "Done in" in status and time.monotonic() - started < 30


def test_a_failed_requests_upload_is_removed_and_the_folder_goes_at_stop(tmp_path, registry):
    uploads = UploadFolder()
    upload = uploads.path / "abc123" / "talk.wav"
    upload.parent.mkdir()
    upload.write_bytes(b"not audio")
    mine = tmp_path / "mine.wav"
    mine.write_bytes(b"a user's file elsewhere")
    service = service_of(tmp_path, registry)  # a text recipe: recordings are refused
    for path in (upload, mine):
        status, _ = last(respond(service, str(path), "", service.defaults(), None, uploads))
        assert "reads text, not recordings" in status
    assert not upload.parent.exists() and mine.exists()  # only what the server received goes
    uploads.remove()
    assert not uploads.path.exists()


def test_recordings_get_a_default_duration_limit_unless_the_recipe_sets_one():
    from lcm.components import resolve
    from lcm.registry import get_registry

    registry = get_registry()
    plain = resolve(registry, "encoder", {"name": "whisper_cascade"})
    limited = with_duration_limit(plain, 1800.0)
    assert plain.options.segmentation.max_duration_s is None
    assert limited.options.segmentation.max_duration_s == 1800.0
    own = resolve(registry, "encoder", {"name": "whisper_cascade",
                                        "segmentation": {"max_duration_s": 60}})
    assert with_duration_limit(own, 1800.0).options.segmentation.max_duration_s == 60
