"""Every error of the session backend and the one place it becomes an HTTP answer (RFC 9457 problem details).

Domain errors are raised by the store (`SessionStore`); `from_postgres` turns the SQLSTATEs of `sql/functions.py`
into them; `EXCEPTION_HANDLERS` maps them, validation errors, HTTP errors and database outages to
`application/problem+json` responses. The status of each error is its class attribute `status`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .observability import count_error
from .schemas import Problem

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}} for code in (401, 404, 409, 413, 422, 503)
}
"""OpenAPI `responses=` of the v1 routes: every status they may answer with a problem."""

# RFC 9110's names where Python's `HTTPStatus` still has the older ones.
_TITLES = {413: "Content Too Large"}


class StoreError(Exception):
    """Base of every domain error.

    Args:
        detail: what went wrong, safe to show to clients (the problem's `detail`).
    """

    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(StoreError):
    """The session, agent, message or multi-agent does not exist (or its session has expired)."""

    status = 404


class AlreadyExists(StoreError):
    """A create named an id that is already taken."""

    status = 409


class UnknownReference(StoreError):
    """A request body names something that does not exist (an agent profile to route a session to)."""

    status = 422


class Conflict(StoreError):
    """The write contradicts what is stored (different message content at an existing message_id)."""

    status = 409


class PreconditionFailed(StoreError):
    """An `If-Match` version did not match the stored one: someone else wrote first."""

    status = 412


class LeaseNotHeld(StoreError):
    """A write claimed a lease the writer does not (or no longer) hold."""

    status = 409


class SessionBusy(StoreError):
    """Another owner holds a live lease on the session; answered with `Retry-After`.

    Args:
        detail: what is busy, for the client.
        retry_after: seconds until the holder's lease expires.
    """

    status = 409

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class BodyTooLarge(Exception):
    """A request body passed the configured limit (raised by `BodySizeLimit` while the body streams in).

    Args:
        max_bytes: the limit that was passed.
    """

    def __init__(self, max_bytes: int) -> None:
        self.detail = f"request body is larger than {max_bytes} bytes"
        super().__init__(self.detail)


# SQLSTATEs raised by the functions of `sql/functions.py` (class SB: "session backend").
SQLSTATE_ERRORS: dict[str, type[StoreError]] = {
    "SB404": NotFound,
    "SB409": Conflict,
    "SB412": PreconditionFailed,
    "SB423": LeaseNotHeld,
}

# The database is down, restarting or out of connections: the client may retry, the process recovers by itself.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    # Refusals when connecting: wrong credentials, no such database, database not accepting connections.
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.ObjectNotInPrerequisiteStateError,
    # Raised by asyncpg when the server drops a connection in the middle of a statement.
    asyncpg.exceptions.InternalClientError,
)


def from_postgres(error: asyncpg.PostgresError) -> StoreError | None:
    """The domain error a backend SQL function signalled with its SQLSTATE, or None for any other database error."""
    error_type = SQLSTATE_ERRORS.get(getattr(error, "sqlstate", "") or "")
    return error_type(str(getattr(error, "message", error))) if error_type else None


def problem(status: int, detail: str | None = None, *, headers: Mapping[str, str] | None = None) -> JSONResponse:
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


async def _store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    count_error(request, type(exc).__name__)
    if isinstance(exc, SessionBusy):
        return problem(exc.status, exc.detail, headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
    return problem(exc.status, exc.detail)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    count_error(request, "RequestValidationError")
    return problem(422, validation_detail(exc))


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, BodyTooLarge):  # FastAPI wraps errors raised while it reads the body
        return problem(413, exc.__cause__.detail)
    return problem(exc.status_code, str(exc.detail), headers=exc.headers)


async def _data_error(request: Request, exc: Exception) -> Response:
    count_error(request, "DataError")
    # PostgreSQL's class 22 (data exception): a value the request schema let through but the column refuses.
    return problem(422, f"value refused by the database: {exc}")


async def _unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("path=<%s>, error=<%r> | database unavailable", request.url.path, exc)
    count_error(request, "DatabaseUnavailable")
    return problem(503, "the database is unavailable; retry shortly", headers={"Retry-After": "1"})


EXCEPTION_HANDLERS: dict[int | type[Exception], Callable[[Request, Exception], Coroutine[Any, Any, Response]]] = {
    StoreError: _store_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
    asyncpg.DataError: _data_error,
    **dict.fromkeys(UNAVAILABLE_ERRORS, _unavailable),
}
"""`FastAPI(exception_handlers=...)`: domain errors, validation and HTTP errors, database outages → problem details."""
