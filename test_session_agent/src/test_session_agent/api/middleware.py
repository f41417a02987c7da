"""ASGI middleware of the agent service: request bodies over the configured size are refused before they are read."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import problem


class BodySizeLimit:
    """Answer 413 (problem details) when `Content-Length` or the streamed body exceeds `max_bytes`.

    A declared length over the limit is refused before a byte of the body is read; a body streamed without one is
    cut off as soon as it passes the limit. (FastAPI's own `max_body_size` answers in plain text, not as a problem.)

    Args:
        app: the wrapped ASGI app.
        max_bytes: largest accepted request body, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request, refusing an oversized body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Inside a route (FastAPI reading the body) an HTTPException becomes the 413 problem itself.
                    raise HTTPException(413, f"request body is larger than {self.max_bytes} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as e:
            if e.status_code != 413 or started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem(413, f"request body is larger than {self.max_bytes} bytes")(scope, receive, send)
