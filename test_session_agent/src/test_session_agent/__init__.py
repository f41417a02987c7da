"""Agent service whose Strands conversations live in PostgreSQL through the session backend."""

from .postgresql_session_repository import (
    BackendUnavailableError,
    PostgreSQLSessionManager,
    PostgreSQLSessionRepository,
    SessionBusyError,
    SessionConflictError,
    SessionNotFoundError,
)

__all__ = [
    "BackendUnavailableError",
    "PostgreSQLSessionManager",
    "PostgreSQLSessionRepository",
    "SessionBusyError",
    "SessionConflictError",
    "SessionNotFoundError",
]
