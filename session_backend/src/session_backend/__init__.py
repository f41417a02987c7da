"""Session backend: a stateless REST service storing the Strands session model in PostgreSQL."""

from .app import create_app
from .db.sessions import SessionStore
from .settings import Settings, get_settings

__all__ = ["SessionStore", "Settings", "create_app", "get_settings"]
