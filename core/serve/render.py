"""The page's HTML: the request's status, the transcript, and the summary traced to it.

Plain HTML strings (escaped), so the browser test and a screenshot read exactly what a user
sees. Clicking a transcript line, or a summary sentence's source, plays that span of the
recording in the page's player (``PLAYER_SCRIPT`` is installed once in the page's head).
"""
from __future__ import annotations

from html import escape
from typing import Any, Optional

from lcm.pipeline.selector import describe_decoding
from lcm.serve.progress import Status
from lcm.ui.words import format_time

PLAYER_ID = "lcm-player"
PLAYER_SCRIPT = f"""<script>
function lcmPlay(start, end) {{
  const player = document.getElementById("{PLAYER_ID}");
  if (!player) return;
  player.currentTime = start;
  player.dataset.stop = end;
  player.play();
}}
</script>"""
STYLE = """<style>
.lcm-segment { cursor: pointer; padding: 2px 4px; border-radius: 4px; margin: 1px 0; }
.lcm-segment:hover { background: rgba(99, 102, 241, 0.12); }
.lcm-time { color: #6b7280; font-variant-numeric: tabular-nums; margin-right: 6px; }
.lcm-item { margin-bottom: 10px; }
.lcm-sentence { font-weight: 600; }
.lcm-origin { font-size: 0.85em; color: #4b5563; }
.lcm-badge { display: inline-block; border-radius: 8px; padding: 0 6px; font-size: 0.8em;
             color: white; margin-right: 4px; }
.lcm-generated { background: #7c3aed; } .lcm-retrieved { background: #0d9488; }
.lcm-supported { background: #15803d; } .lcm-unsupported { background: #b91c1c; }
.lcm-bar { display: inline-block; width: 90px; height: 8px; background: #e5e7eb;
           border-radius: 4px; vertical-align: middle; margin: 0 4px; }
.lcm-bar > span { display: block; height: 8px; border-radius: 4px; background: #6366f1; }
.lcm-error { color: #b91c1c; font-weight: 600; }
.lcm-progress { height: 8px; background: #e5e7eb; border-radius: 4px; margin-top: 4px; }
.lcm-progress > span { display: block; height: 8px; border-radius: 4px; background: #6366f1; }
</style>"""
STAGE_WORDS = {"segmenting": "Segmenting the recording", "recognising": "Recognising speech",
               "encoding": "Encoding sentences into concepts",
               "generating": "Generating summary concepts", "decoding": "Decoding concepts to text",
               "done": "Done"}


def status_html(status: Status) -> str:
    """The stage, its count, the time so far and the rough time left, with a bar."""
    words = STAGE_WORDS.get(status.stage, status.stage)
    detail = f" ({escape(status.detail)})" if status.detail else ""
    left = ("estimating time left after the first request" if status.left_s is None
            else f"about {status.left_s:.0f} s left")
    bar = ("" if status.fraction is None else
           f'<div class="lcm-progress"><span style="width:{100 * status.fraction:.0f}%"></span></div>')
    return (f'<div id="lcm-status">{escape(words)}…{detail} · {status.elapsed_s:.0f} s elapsed · '
            f'{left}{bar}</div>')


def message_html(text: str, error: bool = False) -> str:
    css = ' class="lcm-error"' if error else ""
    return f'<div id="lcm-status"{css}>{escape(text)}</div>'


def result_html(record: dict[str, Any], audio_url: Optional[str], picture: str,
                seconds: float) -> str:
    """Summary first (what was asked for), then the picture, then the transcript."""
    segments = record["segments"]
    player = (f'<audio id="{PLAYER_ID}" controls preload="auto" src="{escape(audio_url)}" '
              f'ontimeupdate="if (this.dataset.stop && this.currentTime >= +this.dataset.stop) '
              f'{{ this.pause(); delete this.dataset.stop; }}"></audio>' if audio_url else "")
    spoken = record["modality"] == "speech"
    heading = "Transcript" if spoken else "Source"
    stops = ", ".join(sorted({p["stop_reason"] for p in record["parts"]}))
    return (f'{STYLE}<div id="lcm-result">'
            f'<h3>Summary</h3><div id="lcm-summary">'
            + "".join(_summary_item(n, item, segments) for n, item in enumerate(record["summary"], 1)) +
            f'</div><p class="lcm-origin">{len(record["summary"])} sentence(s) from '
            f'{len(segments)} segment(s) in {seconds:.1f} s; stopped: {escape(stops)}; '
            f'{record["left_out"]} segment(s) left out</p>'
            f'<h3>Concepts</h3>{picture}'
            f'<h3>{heading}</h3>{player}<div id="lcm-transcript">'
            + "".join(_segment_line(s) for s in segments) + "</div></div>")


def _play(item: dict[str, Any]) -> str:
    """An onclick attribute playing the item's span, where it has one."""
    if item.get("start_s") is None:
        return ""
    return f' onclick="lcmPlay({item["start_s"]:.3f}, {item["end_s"]:.3f})" title="play this span"'


def _span_label(item: dict[str, Any]) -> str:
    if item.get("start_s") is None:
        return ""
    return f"{format_time(item['start_s'])}–{format_time(item['end_s'])}"


def _segment_line(segment: dict[str, Any]) -> str:
    label = _span_label(segment) or f"[{segment['index']}]"
    return (f'<div class="lcm-segment" id="lcm-segment-{segment["index"]}"{_play(segment)}>'
            f'<span class="lcm-time">{escape(label)}</span> {escape(segment["text"])}</div>')


def _summary_item(number: int, item: dict[str, Any], segments: list[dict[str, Any]]) -> str:
    origin = item["decoded"]
    cosine = max(0.0, min(1.0, item["similarity"]))
    source = segments[item["source_index"]]
    where = _span_label(item) or f"[{item['source_index']}]"
    return (f'<div class="lcm-item"><div class="lcm-sentence">{number}. {escape(item["text"])}</div><div class="lcm-origin">'
            f'<span class="lcm-badge lcm-{escape(origin)}" title="{escape(describe_decoding(item))}">'
            f'{escape(origin)}</span>{_support_badge(item)} from <a href="#lcm-segment-{item["source_index"]}"{_play(item)}>'
            f'{escape(where)}</a> “{escape(_shorten(source["text"]))}” cosine '
            f'<span class="lcm-bar" title="cosine {item["similarity"]:.2f}">'
            f'<span style="width:{100 * cosine:.0f}%"></span></span>{item["similarity"]:.2f}'
            f'</div></div>')


def _support_badge(item: dict[str, Any]) -> str:
    """A badge saying whether the source supports the sentence (summaries chosen under the
    support rule carry the verdict)."""
    support = item.get("support")
    if support is None:
        return ""
    word = "supported" if support["supported"] else "unsupported"
    detail = f"cosine {support['cosine']:.2f} to the nearest source segment"
    if support.get("missing"):
        detail += "; not in the source: " + ", ".join(support["missing"])
    return f' <span class="lcm-badge lcm-{word}" title="{escape(detail)}">{word}</span>'


def _shorten(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
