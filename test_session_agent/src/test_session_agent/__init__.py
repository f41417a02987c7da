"""Strands sessions in PostgreSQL: the client library and the agent service built on it.

The client is `PostgreSQLSessionRepository` and `PostgreSQLSessionManager`; the service is `api.create_app`.
"""

from .exceptions import (
    BackendRequestError,
    BackendUnavailableError,
    SessionBusyError,
    SessionConflictError,
    SessionNotFoundError,
)
from .postgresql_session_repository import PostgreSQLSessionRepository
from .session_manager import PostgreSQLSessionManager

__all__ = [
    "BackendRequestError",
    "BackendUnavailableError",
    "PostgreSQLSessionManager",
    "PostgreSQLSessionRepository",
    "SessionBusyError",
    "SessionConflictError",
    "SessionNotFoundError",
]
