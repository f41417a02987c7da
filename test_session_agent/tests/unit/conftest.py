"""Fixtures of the client's unit layer: an in-memory backend (`test_session_agent.testing.FakeBackend`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from test_session_agent import PostgreSQLSessionRepository
from test_session_agent.testing import FakeBackend


@pytest.fixture()
def backend() -> FakeBackend:
    """A fresh in-memory backend."""
    return FakeBackend()


@pytest.fixture()
def make_repository(backend: FakeBackend) -> Iterator[Callable[..., PostgreSQLSessionRepository]]:
    """Returns `f(cls=PostgreSQLSessionRepository, **kwargs)`: a repository (or subclass) talking to `backend`."""
    clients: list[httpx.Client] = []

    def make(cls: type[PostgreSQLSessionRepository] = PostgreSQLSessionRepository, **kwargs: Any) -> Any:
        clients.append(backend.client())
        return cls(client=clients[-1], **kwargs)

    yield make
    for client in clients:
        client.close()
