"""Errors the PostgreSQL clients raise: Strands' `SessionException` refined by what the backend answered."""

from __future__ import annotations

from strands.types.exceptions import SessionException


class SessionNotFoundError(SessionException):
    """The session (or agent, message, multi-agent) does not exist in the backend, or it has expired."""


class SessionConflictError(SessionException):
    """The backend refused a write that contradicts what it stores (HTTP 409/412): someone else wrote first."""


class SessionBusyError(SessionConflictError):
    """Another writer holds the session's lease."""


class BackendUnavailableError(SessionException):
    """The backend could not be reached or answered 5xx; the request may be retried later."""


class TurnNotStoredError(BackendUnavailableError):
    """The backend was unavailable during a turn's commit, and it is now certain that nothing of the turn is stored."""


class TurnOutcomeUnknownError(BackendUnavailableError):
    """A turn's commit was sent but its answer was lost, and the backend could not (yet) say whether it landed.

    Retrying with the same Idempotency-Key is safe: a committed turn answers the retry, an uncommitted one is redone.
    """


class BackendRequestError(SessionException):
    """The backend refused a request as invalid (4xx other than 404/409/412); `status` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        """Create the error.

        Args:
            message: what was refused and why (the backend's problem detail).
            status: the HTTP status the backend answered.
        """
        super().__init__(message)
        self.status = status
