"""Errors of the PostgreSQL clients (Strands' `SessionException` refined by the backend's answer) and the invoke API."""

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


class SessionNotFoundOrExpiredError(SessionNotFoundError):
    """A turn named a session that does not exist or has expired (never silently started afresh under its id)."""

    def __init__(self, session_id: str) -> None:
        """Create the error for `session_id`."""
        super().__init__(f"session {session_id!r} not found or expired")
        self.session_id = session_id


class SessionOfAnotherAgentError(SessionConflictError):
    """A turn through one agent profile named a session that belongs to another."""

    def __init__(self, session_id: str, agent_id: str, owner: str | None) -> None:
        """Create the error: `session_id` belongs to profile `owner`, not to `agent_id`."""
        super().__init__(f"session {session_id!r} belongs to agent {owner!r}, not to agent {agent_id!r}")
        self.session_id = session_id
        self.agent_id = agent_id
        self.owner = owner


class ModelFailedError(Exception):
    """The turn's model failed (its provider unreachable, refusing or erroring); the provider's error is the cause.

    Its message names no provider internals: it may be shown to a client, the cause only logged.
    """

    def __init__(self) -> None:
        """Create the error (raise it `from` the provider's error)."""
        super().__init__("the model failed")


class ModelBusyError(Exception):
    """The model cannot take the turn now (the local model's queue is full); retry shortly. Nothing ran or is stored."""


class AgentProfileNotFoundError(LookupError):
    """No agent profile has this id."""

    def __init__(self, agent_id: str) -> None:
        """Create the error for `agent_id`."""
        super().__init__(f"agent {agent_id!r} not found")
        self.agent_id = agent_id
