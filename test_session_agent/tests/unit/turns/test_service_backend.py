"""`turns/backend.py`: the service-only endpoints, on the in-memory backend."""

from __future__ import annotations

import pytest

from test_session_agent.exceptions import SessionBusyError
from test_session_agent.testing import FakeBackend
from test_session_agent.turns.backend import ServiceBackend


def test_busy_lease_and_release() -> None:
    backend = FakeBackend()
    with backend.client() as client:
        service = ServiceBackend(client)
        assert service.acquire_lease("s", "a", 30)["owner"] == "a"
        with pytest.raises(SessionBusyError):
            service.acquire_lease("s", "b", 30)
        service.release_lease("s", "a")
        assert backend.requests[-1].url.params["owner"] == "a"
