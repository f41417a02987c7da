"""The one place an error of the session backend becomes an HTTP answer (RFC 9457 problem details).

Domain errors (`db/errors.py`) answer with their class's `status`; validation errors, HTTP errors (the shared
handlers of `service_kit.problems`) and database outages are answered here too, and counted in the app's metrics.
"""

from __future__ import annotations

import logging
import math

import asyncpg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from service_kit.problems import PROBLEM_HANDLERS, Handler, problem, problem_responses, validation_detail

from ..db.errors import UNAVAILABLE_ERRORS, SessionBusy, StoreError
from ..observability import count_error

logger = logging.getLogger(__name__)

PROBLEM_STATUSES = (401, 404, 409, 413, 422, 503)
PROBLEM_RESPONSES = problem_responses(*PROBLEM_STATUSES)
"""OpenAPI `responses=` of the v1 routes: every status they may answer with a problem."""


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


async def _data_error(request: Request, exc: Exception) -> Response:
    count_error(request, "DataError")
    # PostgreSQL's class 22 (data exception): a value the request schema let through but the column refuses.
    return problem(422, f"value refused by the database: {exc}")


async def _unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("path=<%s>, error=<%r> | database unavailable", request.url.path, exc)
    count_error(request, "DatabaseUnavailable")
    return problem(503, "the database is unavailable; retry shortly", headers={"Retry-After": "1"})


EXCEPTION_HANDLERS: dict[int | type[Exception], Handler] = {
    **PROBLEM_HANDLERS,
    StoreError: _store_error,
    RequestValidationError: _validation_error,
    asyncpg.DataError: _data_error,
    **dict.fromkeys(UNAVAILABLE_ERRORS, _unavailable),
}
"""`FastAPI(exception_handlers=...)`: domain errors, validation and HTTP errors, database outages → problem details."""
