"""SessionAgents' lease acquisition: retried while another writer holds the session, up to the deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from test_session_agent.agent import SessionAgents
from test_session_agent.exceptions import SessionBusyError
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings


class BusyRepository:
    """Refuses the lease `busy_for` times, then grants it."""

    def __init__(self, busy_for: int) -> None:
        self.busy_for = busy_for
        self.attempts: list[float] = []

    def acquire_lease(
        self, session_id: str, owner: str, ttl_seconds: float, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.busy_for:
            raise SessionBusyError("busy")
        return {"session_id": session_id, "owner": owner, "agent_versions": {}}


@pytest.fixture()
def agents() -> Iterator[SessionAgents]:
    settings = AgentSettings.model_validate({"backend_url": "http://127.0.0.1:9", "model_provider": "scripted"})
    runner = SessionAgents(settings, ScriptedModel(), max_workers=1)
    yield runner
    runner.close()


def test_lease_is_retried_with_growing_waits(agents: SessionAgents) -> None:
    repository = BusyRepository(busy_for=3)
    agents.repository = repository  # type: ignore[assignment]
    lease = agents.take_lease("s", deadline=time.monotonic() + 5, idempotency_key=None)
    assert lease["owner"] == agents.owner
    waits = [b - a for a, b in zip(repository.attempts, repository.attempts[1:], strict=False)]
    assert len(waits) == 3
    assert waits[0] >= 0.005 and waits[1] >= 0.01 and waits[2] >= 0.02


def test_lease_gives_up_at_the_deadline(agents: SessionAgents) -> None:
    repository = BusyRepository(busy_for=10**6)
    agents.repository = repository  # type: ignore[assignment]
    started = time.monotonic()
    with pytest.raises(SessionBusyError):
        agents.take_lease("s", deadline=started + 0.3, idempotency_key=None)
    assert 0.3 <= time.monotonic() - started < 1.0
    assert len(repository.attempts) > 3


def test_a_passed_deadline_still_tries_once(agents: SessionAgents) -> None:
    repository = BusyRepository(busy_for=0)
    agents.repository = repository  # type: ignore[assignment]
    assert agents.take_lease("s", deadline=time.monotonic() - 1, idempotency_key=None)["owner"] == agents.owner
