"""The one place where an error of the agent service becomes an HTTP answer (RFC 9457 problem details).

Client errors (`test_session_agent.exceptions`, Strands' `SessionException`) map to a status and a client-facing
detail in `status_of`, used by the exception handlers and by the SSE route's `error` event alike.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from strands.types.exceptions import SessionException

from ..exceptions import (
    BackendRequestError,
    BackendUnavailableError,
    SessionBusyError,
    SessionConflictError,
    SessionNotFoundError,
    TurnNotStoredError,
    TurnOutcomeUnknownError,
)
from .schemas import Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}} for code in (401, 403, 404, 409, 422, 502, 503)
}
"""OpenAPI `responses=` of every route that may answer a problem."""


def problem(status: int, detail: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """Build an `application/problem+json` response.

    Args:
        status: HTTP status code.
        detail: human-readable explanation specific to this occurrence.
        headers: extra response headers.

    Returns:
        The response.
    """
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def status_of(exc: BaseException) -> tuple[int, str]:
    """HTTP status and client-facing detail of an error raised by a turn or a backend call.

    Args:
        exc: the error.

    Returns:
        `(status, detail)`; 500 for anything that is not a session error.
    """
    if isinstance(exc, SessionNotFoundError):
        return 404, "session not found"
    if isinstance(exc, SessionBusyError):
        return 409, "the session is busy with another turn; retry shortly"
    if isinstance(exc, TurnOutcomeUnknownError):
        return 503, (
            "the session backend did not answer the commit of this turn, so whether it was stored is unknown; "
            "retry with the same Idempotency-Key: a stored turn answers the retry, an unstored one runs again"
        )
    if isinstance(exc, TurnNotStoredError):
        return 503, "the session backend failed while storing this turn; nothing of it was stored, retry shortly"
    if isinstance(exc, BackendUnavailableError):
        return 503, "the session backend is unavailable; the turn did not run, retry shortly"
    if isinstance(exc, SessionConflictError):
        return 409, "the session was changed by another writer during this turn; retry the turn"
    if isinstance(exc, BackendRequestError) and exc.status == 422:
        # The backend refused what the caller sent (e.g. a cursor it never issued): the caller's error, not ours.
        return 422, str(exc)
    if isinstance(exc, SessionException):
        return 502, f"the session backend refused the request: {exc}"
    return 500, "the turn failed inside the agent"


async def _session_error(_: Request, exc: Exception) -> Response:
    status, detail = status_of(exc)
    # Both are transient: another turn holds the session, or the backend is restarting.
    retry = status == 503 or isinstance(exc, SessionBusyError)
    return problem(status, detail, {"Retry-After": "1"} if retry else None)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem(422, "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors()[:5]))


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, str(exc.detail), exc.headers)


EXCEPTION_HANDLERS: dict[int | type[Exception], Callable[[Request, Exception], Coroutine[Any, Any, Response]]] = {
    SessionException: _session_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
}
"""`FastAPI(exception_handlers=...)`: session errors, validation errors and HTTP errors → problem details."""
