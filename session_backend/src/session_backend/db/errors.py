"""The backend's domain errors, the SQLSTATEs its SQL functions raise them with, and the database-outage errors.

Stores raise these; `api/errors.py` is the one place they become HTTP answers (each error's `status`).
"""

from __future__ import annotations

import asyncpg


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


class NotStorable(StoreError):
    """A value the JSON codec cannot encode (a lone surrogate in a string)."""

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


class MemoryLimitReached(StoreError):
    """The actor would hold more memories than `SESSION_BACKEND_MAX_MEMORIES_PER_ACTOR`."""

    status = 409


class MemorySearchTimeout(StoreError):
    """A search ran past `SESSION_BACKEND_MEMORY_SEARCH_TIMEOUT_SECONDS` and PostgreSQL cancelled it."""

    status = 503


class EmbedderUnavailable(StoreError):
    """The embedder failed while memories were being stored (nothing was stored)."""

    status = 503


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
