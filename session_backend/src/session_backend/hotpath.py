"""ASGI fast lane for the two write routes every Strands turn uses: `POST .../messages` and `POST .../batch`.

It answers only requests it can check cheaply (the shapes Strands sends) and hands every other one, body replayed,
to the FastAPI routes, so every refusal keeps the status and problem body the routes give. Justified by the
`levers` benchmark rows ("appends/s at 64 clients, hot path ...", `python -m bench --only levers`).
"""

from __future__ import annotations

import hmac
import re
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
_MAX_MESSAGE_ID = 2_147_483_647
_MAX_BIGINT = 2**63 - 1
_MAX_OPERATIONS = 1000


def route_template(path: str) -> str | None:
    """The route template of `path` when it is one of the fast lane's routes (any method), else None."""
    if _MESSAGES_PATH.fullmatch(path):
        return "/v1/sessions/{session_id}/agents/{agent_id}/messages"
    if _BATCH_PATH.fullmatch(path):
        return "/v1/sessions/{session_id}/batch"
    return None


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
    bad ids, a missing key, any unusual shape), is passed on, with its body, to the FastAPI routes. Errors the store
    raises go through the app's `EXCEPTION_HANDLERS`, as from the routes.

    Args:
        app: the wrapped ASGI app (the FastAPI routes; `BodySizeLimit` must wrap this middleware).
        settings: the app's settings (the API key).
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.api_key = settings.api_key

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
        content_type = authorization = None
        for name, value in scope["headers"]:
            if name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"authorization" and authorization is None:
                authorization = value
        body = await _read_body(receive)
        try:
            if not _is_json(content_type) or not _authorized(authorization, self.api_key):
                raise _Refer
            if len(body) >= OFF_LOOP_BYTES or _UNUSUAL_NUMBER.search(body):  # large: the route parses off the loop
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
        store: SessionStore = scope["app"].state.store
        try:
            if agent_id is not None:
                inserted, text = await store.create_message(session_id, agent_id, message)
                status, content = 201 if inserted else 200, text.encode()
            else:
                status, content = 200, orjson.dumps(await store.apply_batch(session_id, **arguments))
        except Exception as exc:
            handler = _handler(exc)
            if handler is None:
                raise
            response = await handler(Request(scope), exc)
            await response(scope, receive, send)
            return
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
