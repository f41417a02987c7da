"""ASGI fast lane for the two write routes every Strands turn uses: `POST .../messages` and `POST .../batch`.

It answers only requests it can check cheaply (the shapes Strands sends) and hands every other one, body replayed,
to the FastAPI routes, so every refusal keeps the status and problem body the routes give. Justified by the
`levers` benchmark rows ("appends/s at 64 clients, hot path ...", `python -m bench --only levers`).
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import EXCEPTION_HANDLERS
from .jsonbody import OFF_LOOP_BYTES
from .observability import LOG_CONTEXT
from .schemas import _storable_timestamp
from .settings import Settings
from .store import SessionStore

_MESSAGES_PATH = re.compile(r"/v1/sessions/([^/]+)/agents/([^/]+)/messages")
_BATCH_PATH = re.compile(r"/v1/sessions/([^/]+)/batch")
# The patterns of `schemas.Identifier`, `LeaseOwner` and `TurnId`, matched whole (pydantic's `$` is end of text).
_IDENTIFIER = re.compile(r"[A-Za-z0-9._:@+=\-]{1,256}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")
# The timestamps Strands writes (`datetime.isoformat()`); pydantic reads them as `datetime.fromisoformat` does.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?")
# Number literals where orjson and the strict parser of `jsonbody.py` may differ (beyond 64-bit integers become
# floats in orjson, `1e400` is refused differently): such a body takes the FastAPI route. Matches inside strings too,
# which only costs that body the fast lane.
_UNUSUAL_NUMBER = re.compile(rb"\d{19}|[eE][+-]?\d{3}")
# `_UNUSUAL_NUMBER.search`, a third of its cost: digits become 0, E becomes e and - becomes +, then three substring
# searches. (The regex tries both branches at every byte: 5 us of a 330-byte append body, 3% of an append's CPU.)
_NUMBER_SHAPES = bytes.maketrans(b"0123456789E-", b"0000000000e+")


def has_unusual_number(body: bytes) -> bool:
    """Whether `body` holds a number literal `_UNUSUAL_NUMBER` matches (19+ digits, or a 3-digit exponent)."""
    shapes = body.translate(_NUMBER_SHAPES)
    return b"0000000000000000000" in shapes or b"e000" in shapes or b"e+000" in shapes


_MAX_MESSAGE_ID = 2_147_483_647
_MAX_BIGINT = 2**63 - 1
_MAX_OPERATIONS = 1000
# The routes' templates, as the metrics name them.
_MESSAGES_TEMPLATE = "/v1/sessions/{session_id}/agents/{agent_id}/messages"
_BATCH_TEMPLATE = "/v1/sessions/{session_id}/batch"


class _Refer(Exception):
    """The request is not one the fast lane answers: the FastAPI route does."""


def _identifier(value: Any) -> str:
    if type(value) is not str or not _IDENTIFIER.fullmatch(value) or value in (".", ".."):
        raise _Refer
    return value


def _token(value: Any) -> str:
    if type(value) is not str or not _TOKEN.fullmatch(value):
        raise _Refer
    return value


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Refer
    return value


def _optional_object(value: Any) -> dict[str, Any] | None:
    return None if value is None else _object(value)


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if type(value) is not str or not _TIMESTAMP.fullmatch(value):
        raise _Refer
    try:
        return _storable_timestamp(datetime.fromisoformat(value))
    except ValueError as e:
        raise _Refer from e


def _int(value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _Refer
    return value


def message_body(body: Any) -> dict[str, Any]:
    """`MessageBody.model_dump()` of a message the fast lane accepts.

    Raises:
        _Refer: anything but the plain shape (the FastAPI route validates it, and refuses or accepts it).
    """
    body = _object(body)
    return {
        "message_id": _int(body.get("message_id"), 0, _MAX_MESSAGE_ID),
        "message": _object(body.get("message")),
        "redact_message": _optional_object(body.get("redact_message")),
        "created_at": _timestamp(body.get("created_at")),
        "updated_at": _timestamp(body.get("updated_at")),
    }


def _agent_body(body: Any) -> dict[str, Any]:
    body = _object(body)
    if "internal_state" in body:  # the field's name besides its alias: pydantic's precedence decides, not us
        raise _Refer
    return {
        "agent_id": _identifier(body.get("agent_id")),
        "state": _object(body.get("state", {})),
        "conversation_manager_state": _object(body.get("conversation_manager_state", {})),
        "internal_state": _object(body.get("_internal_state", {})),
        "created_at": _timestamp(body.get("created_at")),
        "updated_at": _timestamp(body.get("updated_at")),
    }


def _operation(op: Any) -> dict[str, Any]:
    op = _object(op)
    kind = op.get("op")
    if kind in ("create_message", "update_message"):
        return {"op": kind, "agent_id": _identifier(op.get("agent_id")), "message": message_body(op.get("message"))}
    if kind == "update_agent":
        if_version = op.get("if_version")
        return {
            "op": kind,
            "agent": _agent_body(op.get("agent")),
            "if_version": None if if_version is None else _int(if_version, 1, _MAX_BIGINT),
        }
    raise _Refer


def batch_body(body: Any) -> dict[str, Any]:
    """The arguments of `SessionStore.apply_batch` from a `BatchRequest` the fast lane accepts.

    Returns:
        `{"operations": [...], "lease_owner", "incarnation", "turn", "release_lease"}`, shaped as
        `BatchRequest.model_dump()`.

    Raises:
        _Refer: anything but the plain shape.
    """
    body = _object(body)
    operations = body.get("operations")
    if type(operations) is not list or not 1 <= len(operations) <= _MAX_OPERATIONS:
        raise _Refer
    lease_owner = body.get("lease_owner")
    incarnation = body.get("incarnation")
    turn = body.get("turn")
    release_lease = body.get("release_lease", False)
    if type(release_lease) is not bool or (release_lease and lease_owner is None):
        raise _Refer
    if turn is not None:
        turn = _object(turn)
        key = turn.get("idempotency_key")
        turn = {
            "turn_id": _token(turn.get("turn_id")),
            "idempotency_key": None if key is None else _token(key),
            "result": _object(turn.get("result", {})),
        }
    return {
        "operations": [_operation(op) for op in operations],
        "lease_owner": None if lease_owner is None else _token(lease_owner),
        "incarnation": None if incarnation is None else _int(incarnation, -_MAX_BIGINT - 1, _MAX_BIGINT),
        "turn": turn,
        "release_lease": release_lease,
    }


def _is_json(content_type: bytes | None) -> bool:
    return content_type is not None and content_type.split(b";", 1)[0].strip().lower() == b"application/json"


def _authorized(authorization: bytes | None, api_key: str | None) -> bool:
    # `routes.require_api_key` over `HTTPBearer(auto_error=False)`, without the request objects.
    if api_key is None:
        return True
    scheme, _, credentials = (authorization or b"").decode("latin-1").partition(" ")
    supplied = credentials if scheme.lower() == "bearer" and credentials else ""
    return hmac.compare_digest(supplied.encode(), api_key.encode())


def _handler(exc: Exception) -> Callable[[Request, Exception], Coroutine[Any, Any, Response]] | None:
    for cls in type(exc).__mro__:
        handler = EXCEPTION_HANDLERS.get(cls)
        if handler is not None:
            return handler
    return None


class HotPath:
    """ASGI middleware answering plain message appends and batches without FastAPI's per-request work.

    No pydantic models, dependency resolution or response-model serialisation: the body is parsed with orjson, checked
    by the functions above (which give exactly what the FastAPI route's `model_dump()` gives), and the store's JSON
    text is returned. Everything else, including every request that would be refused before the store (bad JSON,
    bad ids, a missing key, a body without Content-Length or over `SESSION_BACKEND_MAX_BODY_BYTES`, any unusual
    shape), is passed on, with its body, to the app's own middleware and routes. Errors the store raises go through
    the app's `EXCEPTION_HANDLERS`, as from the routes.

    It wraps the app's whole middleware stack (see `app.BackendApp`): the fast lane's requests skip Starlette's error
    and exception middleware, FastAPI's telemetry and body-limit layers, the instrumentator and `BodySizeLimit`, a
    tenth of an append's CPU; it counts and times its own requests (`record`) as the instrumentator would.

    Args:
        app: the wrapped ASGI app (the app's middleware stack).
        owner: the Starlette app whose `state.store` answers and that handlers see as `request.app`.
        settings: the app's settings (the API key, the body size limit).
        record: `(route template, method, status class e.g. "2xx", seconds)`: counts one answered request.
    """

    def __init__(
        self,
        app: ASGIApp,
        owner: Any,
        settings: Settings,
        record: Callable[[str, str, str, float], None] | None = None,
    ) -> None:
        self.app = app
        self.owner = owner
        self.api_key = settings.api_key
        self.max_body_bytes = settings.max_body_bytes
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request: the fast lane when it is one of its two routes, else the wrapped app."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        messages = _MESSAGES_PATH.fullmatch(path)
        batch = None if messages else _BATCH_PATH.fullmatch(path)
        if messages is None and batch is None:
            await self.app(scope, receive, send)
            return
        template = _MESSAGES_TEMPLATE if messages is not None else _BATCH_TEMPLATE
        content_type = authorization = length = None
        for name, value in scope["headers"]:
            if name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"authorization" and authorization is None:
                authorization = value
            elif name == b"content-length" and length is None:
                length = value
        if length is None or not length.isdigit() or int(length) > self.max_body_bytes:
            await self.app(scope, receive, send)  # `BodySizeLimit` and the route decide, with the body unread
            return
        started = time.perf_counter()
        scope["app"] = self.owner  # as Starlette sets it: handlers' `request.app`
        body = await _read_body(receive)
        if len(body) != int(length):
            return  # the client left mid-body: nobody to answer, and a truncated body is no request
        try:
            if not _is_json(content_type) or not _authorized(authorization, self.api_key):
                raise _Refer
            if len(body) >= OFF_LOOP_BYTES or has_unusual_number(body):  # large: the route parses off the loop
                raise _Refer
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise _Refer from e
            if messages is not None:
                session_id, agent_id = _identifier(messages[1]), _identifier(messages[2])
                message = message_body(parsed)
            else:
                session_id, agent_id = _identifier(batch[1]), None  # type: ignore[index]
                arguments = batch_body(parsed)
        except _Refer:
            await self.app(scope, _replay(body, receive), send)
            return
        LOG_CONTEXT["session_id"].set(session_id)
        store: SessionStore = self.owner.state.store
        status = 500
        try:
            try:
                if agent_id is not None:
                    inserted, text = await store.create_message(session_id, agent_id, message)
                    status, content = 201 if inserted else 200, text.encode()
                else:
                    status, content = 200, orjson.dumps(await store.apply_batch(session_id, **arguments))
            except Exception as exc:
                handler = _handler(exc)
                if handler is None:
                    raise  # uvicorn answers 500 and logs it, as Starlette's error middleware would
                response = await handler(Request(scope), exc)
                status = response.status_code
                await response(scope, receive, send)
                return
            await self._answer(send, status, content)
        finally:
            if self.record is not None:
                self.record(template, "POST", f"{status // 100}xx", time.perf_counter() - started)

    @staticmethod
    async def _answer(send: Send, status: int, content: bytes) -> None:
        # The headers a starlette `Response(media_type="application/json")` sends, without building one.
        headers = [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: the route's own read sees the same
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
