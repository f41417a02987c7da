"""Request bodies parsed strictly and, when large, off the event loop: the route class of both services' routers.

Strict: RFC 8259 only (no `NaN`, no numbers beyond a double), and nested at most `MAX_JSON_DEPTH` levels.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

# Bodies from this size on are parsed on a worker thread: a 12 MB body takes the loop ~1 s to parse (hardening
# round 2), during which every other request would wait.
OFF_LOOP_BYTES = 256 * 1024

# Arrays and objects nested deeper than this are refused (422) by both services: deeper values would overflow the
# parser's recursion (about 1,000 levels) or orjson's encoder (255, the agent's client) further along.
MAX_JSON_DEPTH = 128


def is_json(content_type: str | None) -> bool:
    """Whether a body of `content_type` is JSON (`application/json`, `application/*+json`, or none given)."""
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def parse_json(body: bytes) -> Any:
    """Parse a JSON request body as RFC 8259 defines it.

    `NaN`, `Infinity` and numbers beyond the range of a double (`1e400`) are refused rather than stored as `null`;
    so are arrays and objects nested deeper than `MAX_JSON_DEPTH`.

    Args:
        body: the raw body; parsed on a worker thread when it is `OFF_LOOP_BYTES` or larger.

    Returns:
        The parsed value.

    Raises:
        RequestValidationError: the body is not strict JSON (answered 422 with a problem body).
    """
    try:
        if len(body) >= OFF_LOOP_BYTES:
            return await asyncio.to_thread(_loads_bounded, body)
        return _loads_bounded(body)
    except JSONTooDeepError as e:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"JSON decode error: {e}", "input": {}}]
        ) from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        position = e.pos if isinstance(e, json.JSONDecodeError) else e.start
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", position), "msg": f"JSON decode error: {e}", "input": {}}]
        ) from e


class JSONTooDeepError(ValueError):
    """A JSON value nested deeper than `MAX_JSON_DEPTH`."""


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` (parsed JSON: dicts, lists, scalars) nests arrays and objects more than `limit` levels deep.

    Iterative (no recursion, whatever the depth); stops at the first container past the limit.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _loads(body: bytes) -> Any:
    # `json.loads(body, **options)` without building a decoder per call (that cost more than decoding a message).
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


def _loads_bounded(body: bytes) -> Any:
    # A body with fewer brackets than the limit cannot be nested deeper: most are checked by two byte counts.
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return _loads(body)
    try:
        value = _loads(body)
    except RecursionError as e:
        raise JSONTooDeepError(f"nested deeper than {MAX_JSON_DEPTH} levels") from e
    if too_deep(value):
        raise JSONTooDeepError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise json.JSONDecodeError(f"{text} is beyond the range of a double", text, 0)
    return value


# The standard parser, as FastAPI's own, so integers keep their exact value (the schemas refuse those beyond 64 bits);
# only its non-standard extensions are turned off.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


class StrictJSONRoute(APIRoute):
    """An `APIRoute` whose JSON body is parsed by `parse_json` before FastAPI validates it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler: parse the body first, so FastAPI's own (lenient, on-loop) parse never runs."""
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            if self.body_field is not None and is_json(request.headers.get("content-type")):
                body = await request.body()
                if body:
                    # Starlette's `Request.json()` returns this cached value; FastAPI reads the body through it.
                    request._json = await parse_json(body)
            return await handler(request)

        return strict_handler
