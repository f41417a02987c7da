"""RFC 9457 problem-details responses and the one place where errors become HTTP statuses."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from http import HTTPStatus

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import SessionBusy, StoreError
from .middleware import BodyTooLarge

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

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
    # Raised by asyncpg when the server drops a connection in the middle of a statement.
    asyncpg.exceptions.InternalClientError,
)


def problem(status: int, detail: str | None = None, *, headers: Mapping[str, str] | None = None) -> Response:
    """Build an `application/problem+json` response.

    Args:
        status: HTTP status code.
        detail: human-readable explanation specific to this occurrence.
        headers: extra response headers.
    """
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def register_problem_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors, HTTP errors and database outages to problem details."""

    async def store_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreError)
        if isinstance(exc, SessionBusy):
            return problem(exc.status, exc.detail, headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
        return problem(exc.status, exc.detail)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem(422, _validation_detail(exc))

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, BodyTooLarge):  # FastAPI wraps errors raised while it reads the body
            return problem(413, "request body is larger than the configured limit")
        return problem(exc.status_code, str(exc.detail), headers=exc.headers)

    async def data_error(_: Request, exc: Exception) -> Response:
        # PostgreSQL's class 22 (data exception): a value the request schema let through but the column refuses.
        return problem(422, f"value refused by the database: {exc}")

    async def unavailable(request: Request, exc: Exception) -> Response:
        logger.warning("path=<%s>, error=<%r> | database unavailable", request.url.path, exc)
        return problem(503, "the database is unavailable; retry shortly", headers={"Retry-After": "1"})

    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(asyncpg.DataError, data_error)
    for error_type in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_type, unavailable)
