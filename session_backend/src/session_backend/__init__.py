"""Session backend: a stateless REST service storing the Strands session model in PostgreSQL."""

from .app import create_app
from .settings import Settings, get_settings
from .store import SessionStore

__all__ = ["SessionStore", "Settings", "create_app", "get_settings"]
