"""ASGI fast lane for `POST /process-streaming`, the route a chat client calls for every turn.

It answers only the plain request (a JSON body of `ProcessRequest`'s shape, a valid key when access control is on, no
`X-Device-ID` or `Idempotency-Key` header, and no `Origin` header when CORS is on: same-origin requests of the page
then take the route too) and hands every other one, body replayed, to the FastAPI route, so every refusal keeps the
status and problem body the route gives. Both run the same turn (`routers.process.stream_turn`). Justified by the
`streaming` benchmark row "fast lane on, vs off" (`python -m bench --only streaming`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import AgentSettings
from .deps import caller_for_key
from .routers.process import stream_turn
from .schemas import ProcessRequest

PATH = "/process-streaming"

_REFERRED_HEADERS = frozenset({b"x-device-id", b"idempotency-key"})
"""Headers whose requests the route answers (their checks are the route's dependencies')."""


class _Refer(Exception):
    """The request is not one the fast lane answers: the FastAPI route does."""


class TurnFastLane:
    """ASGI middleware answering plain streamed turns without FastAPI's per-request work.

    No routing, dependency resolution or middleware stack: the body is validated by `ProcessRequest` itself, the key
    by `deps.caller_for_key`, and the turn streamed by `stream_turn`, as in the route. Everything else (a body without
    Content-Length or over `AGENT_MAX_REQUEST_BYTES`, not JSON, not valid, a missing or wrong key, the headers above,
    and any turn `stream_turn` refuses before it starts) is passed on, with its body, to the app's own middleware and
    routes, which answer it as they would have: the lane never writes an error answer of its own.

    It wraps the app's whole middleware stack (see `app.AgentApp`); it counts and times its own requests (`record`)
    as the instrumentator would.

    Args:
        app: the wrapped ASGI app (the app's middleware stack).
        owner: the FastAPI app whose `state.agents` runs turns.
        settings: the app's settings (keys, body size limit, CORS origins).
        record: `(route template, method, status class e.g. "2xx", seconds)`: counts one answered request.
    """

    def __init__(
        self,
        app: ASGIApp,
        owner: Any,
        settings: AgentSettings,
        record: Callable[[str, str, str, float], None] | None = None,
    ) -> None:
        self.app = app
        self.owner = owner
        self.settings = settings
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request: the fast lane for a plain streamed turn, else the wrapped app."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        content_type = authorization = length = None
        referred = False
        for name, value in scope["headers"]:
            if name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"authorization" and authorization is None:
                authorization = value
            elif name == b"content-length" and length is None:
                length = value
            elif name in _REFERRED_HEADERS or (name == b"origin" and self.settings.cors_origins):
                referred = True
        if referred or length is None or not length.isdigit() or int(length) > self.settings.max_request_bytes:
            await self.app(scope, receive, send)  # `BodySizeLimit` and the route decide, with the body unread
            return
        started = time.perf_counter()
        try:
            body = await Request(scope, receive).body()
        except ClientDisconnect:
            return  # nobody to answer, and a truncated body is no request
        try:
            if not _is_json(content_type):
                raise _Refer
            turn = ProcessRequest.model_validate_json(body)
            caller = caller_for_key(self.settings, _bearer_key(authorization))
            # Raises only before the turn starts (refusals: 401, 403, 404, 422; the backend down for the ownership
            # check), having changed nothing: the route then checks again and gives its own answer.
            response = await stream_turn(turn, self.owner.state.agents, self.settings, caller)
        except Exception:
            await self.app(scope, _replay(body, receive), send)
            return
        status = 500

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await response(scope, receive, counted_send)
        finally:
            if self.record is not None:
                self.record(PATH, "POST", f"{status // 100}xx", time.perf_counter() - started)


def _is_json(content_type: bytes | None) -> bool:
    return content_type is not None and content_type.split(b";", 1)[0].strip().lower() == b"application/json"


def _bearer_key(authorization: bytes | None) -> str | None:
    """The key of `Authorization: Bearer <key>`, as FastAPI's `HTTPBearer(auto_error=False)` reads it; else None."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.decode("latin-1").partition(" ")
    return credentials if scheme.lower() == "bearer" and credentials else None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
