"""ASGI fast lane for the two write routes every Strands turn uses: `POST .../messages` and `POST .../batch`.

It calls those routes' own endpoint functions with arguments validated exactly as FastAPI would (the routes' path
matching, key check, strict JSON parser and pydantic models), skipping only the middleware stack, routing over every
route, and dependency resolution. A request it cannot validate is handed, body replayed, to the FastAPI route, which
answers it (so every refusal keeps the route's status and problem body). Justified by the `levers` benchmark rows
("appends/s at 64 clients, hot path ...", `python -m bench --only levers`; README, Benchmarks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_kit.jsonbody import is_json, parse_json
from service_kit.logs import LOG_CONTEXT

from ..schemas.common import Identifier
from ..schemas.sessions import MessageBody
from ..schemas.turns import BatchRequest
from ..settings import Settings
from . import sessions, turns
from .deps import _bearer, require_api_key

# A route's path parameters, all identifiers: validated in one call.
_PATH_IDS: TypeAdapter[dict[str, str]] = TypeAdapter(dict[str, Identifier])


@dataclass(frozen=True)
class _Lane:
    """A route the fast lane answers: its endpoint, the body model it takes and the app state holding its store."""

    endpoint: Callable[..., Coroutine[Any, Any, Response]]
    body: type[BaseModel]
    store: str


_LANES = (
    _Lane(sessions.create_message, MessageBody, "sessions"),
    _Lane(turns.apply_batch, BatchRequest, "turns"),
)


class _Refer(Exception):
    """The request is not one the fast lane answers: the FastAPI route does (and gives its own answer)."""


class HotPath:
    """ASGI middleware answering plain message appends and batches through their endpoints, without the stack.

    Wraps the app's whole middleware stack (see `app.BackendApp`). Requests without `Content-Length`, or over
    `SESSION_BACKEND_MAX_BODY_BYTES`, go to the stack (`BodySizeLimit` decides). Errors the endpoint raises go through
    the app's exception handlers, as from the routes; the lane counts and times its own requests (`record`).

    Args:
        app: the wrapped ASGI app (the app's middleware stack).
        owner: the FastAPI app whose routes, state and exception handlers the lane uses.
        settings: the app's settings (the body size limit).
        record: `(route template, method, status class e.g. "2xx", seconds)`: counts one answered request.
    """

    def __init__(
        self,
        app: ASGIApp,
        owner: FastAPI | None,
        settings: Settings,
        record: Callable[[str, str, str, float], None] | None = None,
    ) -> None:
        self.app = app
        self.owner = owner
        self.max_body_bytes = settings.max_body_bytes
        self.record = record
        endpoints = {lane.endpoint: lane for lane in _LANES}
        routes = [*sessions.router.routes, *turns.router.routes]
        self.routes = [
            (r, endpoints[r.endpoint]) for r in routes if isinstance(r, APIRoute) and r.endpoint in endpoints
        ]

    def _match(self, scope: Scope) -> tuple[APIRoute, _Lane, dict[str, Any]] | None:
        for route, lane in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return route, lane, child["path_params"]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request: the fast lane when it is one of its routes, else the wrapped app."""
        matched = self._match(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        route, lane, path_params = matched
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is None or not length.isdigit() or int(length) > self.max_body_bytes:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope["app"] = self.owner  # as Starlette sets it: handlers' and dependencies' `request.app`
        body = await _read_body(receive)
        if len(body) != int(length):
            return  # the client left mid-body: nobody to answer, and a truncated body is no request
        request = Request(scope)
        try:
            arguments = await self._arguments(request, lane, path_params, body)
        except _Refer:
            await self.app(scope, _replay(body, receive), send)
            return
        LOG_CONTEXT["session_id"].set(arguments["session_id"])
        status = 500
        try:
            try:
                response = await lane.endpoint(**arguments)
            except Exception as exc:
                handler = _handler(self.owner, exc)
                if handler is None:
                    raise  # uvicorn answers 500 and logs it, as Starlette's error middleware would
                response = await handler(request, exc)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            if self.record is not None:
                self.record(route.path, "POST", f"{status // 100}xx", time.perf_counter() - started)

    async def _arguments(
        self, request: Request, lane: _Lane, path_params: dict[str, Any], body: bytes
    ) -> dict[str, Any]:
        """The endpoint's arguments, validated as FastAPI validates them for the route.

        Raises:
            _Refer: anything the route would refuse (or treat otherwise): it answers instead.
        """
        try:
            await require_api_key(request, await _bearer(request))
            if not is_json(request.headers.get("content-type")):
                raise _Refer
            model = lane.body.model_validate(await parse_json(body))
            ids = _PATH_IDS.validate_python(path_params)
        except (HTTPException, RequestValidationError, ValidationError) as e:
            raise _Refer from e
        assert self.owner is not None
        return {**ids, "body": model, "store": getattr(self.owner.state, lane.store)}


def _handler(owner: Any, exc: Exception) -> Callable[[Request, Exception], Coroutine[Any, Any, Response]] | None:
    handlers = owner.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            return handler  # type: ignore[no-any-return]
    return None


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
