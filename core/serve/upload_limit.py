"""Uploads over the size limit refused before their body is read.

Gradio checks the limit twice: the page will not send a larger file, and its upload route stops
reading once the limit is passed. A client other than the page still gets that far; this ASGI
middleware answers 413 from the declared ``Content-Length`` alone, before any byte of the body.
"""
from __future__ import annotations

from typing import Any

MULTIPART_SLACK = 64 * 1024
"""Room for the multipart headers around a file exactly at the limit."""


class UploadLimit:
    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/upload"):
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_bytes + MULTIPART_SLACK:
                # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
                from starlette.responses import PlainTextResponse

                refusal = PlainTextResponse(
                    f"upload refused: {int(declared) / 2 ** 20:.1f} MB, more than the limit of "
                    f"{self.max_bytes / 2 ** 20:g} MB", status_code=413)
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
