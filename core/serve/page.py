"""The page ``lcm serve`` shows, built with Gradio, and the server behind it.

Offline by construction: Gradio's analytics and version check are off, and the theme names
system fonts only (its default asks Google for a web font). Requests queue in Gradio's bounded
queue (the page shows each waiting user's position) and run one at a time; an upload larger
than the limit is refused before its body is read (``upload_limit``).
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import wait
from typing import Any, Iterator, Optional
from urllib.parse import quote

from lcm.errors import UserError
from lcm.serve.offline import OfflinePage
from lcm.serve.projection import concept_picture
from lcm.serve.requests import RequestCancelled, UploadFolder
from lcm.serve.render import PLAYER_SCRIPT, message_html, result_html, status_html
from lcm.serve.service import MAX_SUMMARY_LENGTH, Answer, Options, Service, user_message
from lcm.serve.upload_limit import UploadLimit

log = logging.getLogger(__name__)

SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial",
                "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
POLL_S = 0.5
"""How often a running request's status is sent to the page."""
TITLE = "lcm · summarise a recording"
UPLOADS_EXPIRE = (600, 3600)
"""Every 10 minutes, uploads older than an hour go (Gradio's ``delete_cache``): a summarised
recording stays that long for its player."""


def build_page(service: Service, uploads: Optional[UploadFolder] = None) -> Any:
    """The Blocks app: inputs and options on the left, status and result on the right."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import gradio as gr

    defaults = service.defaults()
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    with gr.Blocks(title=TITLE, theme=theme, head=PLAYER_SCRIPT, analytics_enabled=False,
                   delete_cache=UPLOADS_EXPIRE) as page:
        gr.Markdown(f"## {TITLE}\nA Large Concept Model summarises in sentence-embedding space: "
                    f"speak or drop a recording (WAV, FLAC, OGG, MP3), or paste text. Each summary "
                    f"sentence links to the part of the source it came from.")
        with gr.Row():
            with gr.Column(scale=2):
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                 label="Recording", visible=service.takes_audio,
                                 elem_id="lcm-audio")
                text = gr.Textbox(lines=5, label="…or paste text" if service.takes_audio else "Text",
                                  placeholder="A few paragraphs to summarise", elem_id="lcm-text")
                with gr.Accordion("Options", open=True):
                    length = gr.Slider(1, MAX_SUMMARY_LENGTH, value=defaults.summary_length, step=1,
                                       label="Summary length (most sentences)")
                    end_rule = gr.Checkbox(value=defaults.end_rule,
                                           label="Stop at the end concept (end rule)")
                    decoder = gr.Dropdown(list(service.decoders), value=defaults.decoder,
                                          label="Decoder")
                    guidance = gr.Slider(1.0, 6.0, value=defaults.guidance_scale or 1.0, step=0.5,
                                         label="Guidance scale (diffusion head)",
                                         visible=defaults.guidance_scale is not None)
                run = gr.Button("Summarise", variant="primary", elem_id="lcm-run")
            with gr.Column(scale=3):
                status = gr.HTML(elem_id="lcm-status-box")
                result = gr.HTML(elem_id="lcm-result-box")

        def summarise(audio_path: Optional[str], pasted: str, summary_length: float,
                      end: bool, decoder_label: str, scale: float) -> Iterator[tuple[str, Any]]:
            options = Options(int(summary_length), bool(end), decoder_label,
                              None if defaults.guidance_scale is None else float(scale))
            yield from respond(service, audio_path, pasted or "", options, gr.update(), uploads)

        inputs = [audio, text, length, end_rule, decoder, guidance]
        run.click(summarise, inputs, [status, result], api_name="summarize", concurrency_limit=1,
                  concurrency_id="summarize")
        # A recording from the microphone is summarised when it stops (once uploaded: a click
        # right after stopping would find no recording yet).
        audio.stop_recording(summarise, inputs, [status, result], api_name=False,
                             concurrency_limit=1, concurrency_id="summarize")
    return page


def respond(service: Service, audio_path: Optional[str], text: str, options: Options,
            unchanged: Any, uploads: Optional[UploadFolder] = None) -> Iterator[tuple[str, Any]]:
    """Run one request on the service's worker, yielding (status, result) as it goes; a user's
    error becomes a message and anything else a short one (logged whole): the server serves on.
    A request the page leaves (closed, stopped) is cancelled, and its upload removed; a
    summarised recording stays for its player until the upload folder's expiry or the stop."""
    if not audio_path and not text.strip():
        yield message_html("Give a recording, or paste text.", error=True), ""
        return
    tracker = service.tracker(audio=bool(audio_path))
    request = service.submit(audio_path, text, options, tracker)
    answered = False
    try:
        while not request.done():
            yield status_html(tracker.status()), unchanged
            wait([request], timeout=POLL_S)
        answered = yield from _answer(request, audio_path)
    finally:
        if not request.done():
            request.cancel()
            tracker.cancel()
        if uploads is not None and not answered:
            uploads.discard(audio_path)


def _answer(request: Any, audio_path: Optional[str]) -> Iterator[tuple[str, Any]]:
    """Yield the request's result or its error; True where the result shows the recording."""
    try:
        answer = request.result()
    except RequestCancelled:
        yield message_html("Cancelled.", error=True), ""
        return False
    except UserError as exc:
        yield message_html(user_message(exc), error=True), ""
        return False
    except Exception as exc:  # a bug or a broken environment: say so briefly, log it whole
        log.error("request failed", exc_info=exc)
        yield message_html(f"internal error ({type(exc).__name__}); the server log has details",
                           error=True), ""
        return False
    yield _done(answer, audio_path)
    return True


def _done(answer: Answer, audio_path: Optional[str]) -> tuple[str, str]:
    url = f"/gradio_api/file={quote(audio_path)}" if audio_path else None
    picture = concept_picture(answer.source_vectors, answer.summary_concepts)
    return (message_html(f"Done in {answer.seconds:.1f} s."),
            result_html(answer.record, url, picture, answer.seconds))


def serve(service: Service, host: str, port: int, max_upload_mb: float, queue_size: int) -> None:
    """Serve the page until interrupted; the uploads go with it."""
    uploads = UploadFolder()  # before Gradio reads where to keep uploads
    page = build_page(service, uploads)
    page.queue(max_size=queue_size, default_concurrency_limit=1)
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from starlette.middleware import Middleware

    limit = int(max_upload_mb * 2 ** 20)
    page.launch(server_name=host, server_port=port, max_file_size=limit, ssr_mode=False,
                share=False, inbrowser=False, quiet=True, prevent_thread_lock=True,
                app_kwargs={"middleware": [Middleware(UploadLimit, max_bytes=limit),
                                           Middleware(OfflinePage)]})
    print(f"lcm serve: http://{host}:{port} (uploads up to {max_upload_mb:g} MB, "
          f"{queue_size} requests queued at most; Ctrl+C stops)", flush=True)
    try:
        page.block_thread()
    finally:
        page.close()
        uploads.remove()
