"""Gradio's page template asks the network for two things a page served offline must not
need: an iframe-resizer script from a CDN (only useful when the page is embedded elsewhere)
and preconnections to Google's font servers. This ASGI middleware removes them from the page's
HTML as it is served; everything else the page loads ships inside the gradio package."""
from __future__ import annotations

import re
from typing import Any

EXTERNAL = re.compile(rb'<script\s+src="https?://[^"]*"[^>]*>\s*</script>'
                      rb'|<link\s+rel="preconnect"[^>]*>', re.S)


def strip_external(html: bytes) -> bytes:
    """``html`` without scripts loaded from other hosts or preconnections to them."""
    return EXTERNAL.sub(b"", html)


class OfflinePage:
    """Rewrites the HTML of the page itself (``GET /``); every other response passes as is."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def rewrite(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body"):
                return
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            body = b"".join(parts)
            if any(k.lower() == b"content-type" and b"text/html" in v for k, v in headers):
                body = strip_external(body)
            await send({**start, "headers": headers + [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)
