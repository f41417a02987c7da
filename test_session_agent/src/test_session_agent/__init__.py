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
from .memory import PostgreSQLMemoryStore
from .memory_text import FirstPersonExtractor
from .postgresql_session_repository import PostgreSQLSessionRepository
from .profiles import AgentProfile, AgentProfileClient
from .session_manager import PostgreSQLSessionManager, TurnContext
from .storage import PostgreSQLStorage

__all__ = [
    "AgentProfile",
    "AgentProfileClient",
    "BackendRequestError",
    "BackendUnavailableError",
    "FirstPersonExtractor",
    "PostgreSQLMemoryStore",
    "PostgreSQLSessionManager",
    "PostgreSQLSessionRepository",
    "PostgreSQLStorage",
    "SessionBusyError",
    "SessionConflictError",
    "SessionNotFoundError",
    "TurnContext",
]
