"""The one place where an error of the agent service becomes an HTTP answer (RFC 9457 problem details).

Client errors (`test_session_agent.exceptions`, Strands' `SessionException`) map to a status and a client-facing
detail in `status_of`, used by the exception handlers and by the SSE route's `error` event alike.
"""

from __future__ import annotations

from fastapi import Request, Response
from strands.types.exceptions import ContextWindowOverflowException, ModelThrottledException, SessionException

from service_kit.problems import PROBLEM_HANDLERS, Handler, problem, problem_responses

from ..exceptions import (
    AgentProfileNotFoundError,
    BackendRequestError,
    BackendUnavailableError,
    ModelBusyError,
    ModelFailedError,
    SessionBusyError,
    SessionConflictError,
    SessionNotFoundError,
    SessionNotFoundOrExpiredError,
    SessionOfAnotherAgentError,
    TurnNotStoredError,
    TurnOutcomeUnknownError,
)

PROBLEM_RESPONSES = problem_responses(401, 403, 404, 409, 422, 502, 503)
"""OpenAPI `responses=` of every route that may answer a problem."""


def status_of(exc: BaseException) -> tuple[int, str]:
    """HTTP status and client-facing detail of an error raised by a turn or a backend call.

    Args:
        exc: the error.

    Returns:
        `(status, detail)`; 500 for anything that is not a session error.
    """
    # The invoke API's errors name the profile or session, in their own words.
    if isinstance(exc, AgentProfileNotFoundError | SessionNotFoundOrExpiredError):
        return 404, str(exc)
    if isinstance(exc, SessionOfAnotherAgentError):
        return 409, str(exc)
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
    if isinstance(exc, ModelBusyError):
        return 503, "the model is busy with other turns; nothing of this turn ran or was stored, retry shortly"
    if isinstance(exc, ModelFailedError | ModelThrottledException | ContextWindowOverflowException):
        # The provider's own error (endpoint, SDK, request ids) stays in the log.
        return 502, "the model failed; nothing of this turn was stored, retry later"
    return 500, "the turn failed inside the agent"


async def _session_error(_: Request, exc: Exception) -> Response:
    status, detail = status_of(exc)
    # Both are transient: another turn holds the session, or the backend is restarting.
    retry = status == 503 or isinstance(exc, SessionBusyError)
    return problem(status, detail, {"Retry-After": "1"} if retry else None)


EXCEPTION_HANDLERS: dict[int | type[Exception], Handler] = {
    SessionException: _session_error,
    AgentProfileNotFoundError: _session_error,
    ModelFailedError: _session_error,
    ModelBusyError: _session_error,
    ModelThrottledException: _session_error,
    ContextWindowOverflowException: _session_error,
    **PROBLEM_HANDLERS,
}
"""`FastAPI(exception_handlers=...)`: session errors, validation errors and HTTP errors → problem details."""
