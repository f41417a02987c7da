"""Strands sessions in PostgreSQL: the client library (`PostgreSQLSessionRepository`, `PostgreSQLSessionManager`)
and the agent service built on it."""

from .exceptions import (
    BackendRequestError,
    BackendUnavailableError,
    SessionBusyError,
    SessionConflictError,
    SessionNotFoundError,
)
from .postgresql_session_repository import PostgreSQLSessionRepository
from .session_manager import PostgreSQLSessionManager
from .storage import PostgreSQLStorage

__all__ = [
    "BackendRequestError",
    "BackendUnavailableError",
    "PostgreSQLSessionManager",
    "PostgreSQLSessionRepository",
    "PostgreSQLStorage",
    "SessionBusyError",
    "SessionConflictError",
    "SessionNotFoundError",
]
