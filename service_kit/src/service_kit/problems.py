"""RFC 9457 problem details (`application/problem+json`) and the request-body limit, as both services answer them.

`BodySizeLimit` is this package's own rather than Starlette's `RequestBodyLimitMiddleware` (FastAPI's
`max_body_size`): Starlette's answers an oversized declared `Content-Length` only after the app has run (and in plain
text when the route never reads the body), with a detail of its own; this one refuses before the app runs, always as a
problem with the limit in its detail.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_MEDIA_TYPE = "application/problem+json"

# RFC 9110's names where Python's `HTTPStatus` still has the older ones.
_TITLES = {413: "Content Too Large"}

Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` naming a problem body for each of `statuses`."""
    return {code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}} for code in statuses}


def problem(status: int, detail: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """Build an `application/problem+json` response.

    Args:
        status: HTTP status code.
        detail: human-readable explanation specific to this occurrence.
        headers: extra response headers.

    Returns:
        The response (also an ASGI app, so middleware can send it).
    """
    title = _TITLES.get(status) or HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def validation_detail(exc: RequestValidationError) -> str:
    """The first five validation errors as `location: message` pairs, for a 422's `detail`."""
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()[:5]]
    return "; ".join(parts) or "invalid request"


async def validation_error(_: Request, exc: Exception) -> Response:
    """Exception handler: a request that fails validation is a 422 problem."""
    assert isinstance(exc, RequestValidationError)
    return problem(422, validation_detail(exc))


async def http_error(_: Request, exc: Exception) -> Response:
    """Exception handler: an `HTTPException` (FastAPI's or Starlette's) is a problem with its status and detail."""
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail), exc.headers)


PROBLEM_HANDLERS: dict[int | type[Exception], Handler] = {
    RequestValidationError: validation_error,
    HTTPException: http_error,
}
"""`FastAPI(exception_handlers=...)` entries both services share: validation and HTTP errors as problems."""


class BodyTooLarge(HTTPException):
    """A request body passed the configured limit while it streamed in (answered 413 as an `HTTPException`).

    Args:
        max_bytes: the limit that was passed.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is larger than {max_bytes} bytes")


class BodySizeLimit:
    """Answer 413 (problem details) when `Content-Length` or the streamed body exceeds `max_bytes`.

    A declared length over the limit (or one that is not a number) is refused before a byte of the body is read; a
    body streamed without one is cut off as soon as it passes the limit.

    Args:
        app: the wrapped ASGI app.
        max_bytes: largest accepted request body, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, refusing an oversized body before the app reads it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
                break
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)  # inside a route: the `http_error` handler answers it
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem(413, BodyTooLarge(self.max_bytes).detail)(scope, receive, send)
