"""HTTP API of the agent service."""

from .app import create_app

__all__ = ["create_app"]
