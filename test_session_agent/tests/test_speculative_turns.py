"""Speculative turns: a cached agent's model starts while the lease request is in flight, and nothing of it is
streamed, run or stored unless the lease shows the agent current (`SESSION_SPECULATIVE_TURNS`)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from test_session_agent import PostgreSQLSessionRepository
from test_session_agent.agent import SessionAgents, TurnRequest
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings

pytestmark = pytest.mark.integration


def _texts(backend_url: str, session_id: str) -> list[str]:
    stored = PostgreSQLSessionRepository(base_url=backend_url).list_messages(session_id, "default")
    return [m.message["content"][0]["text"] for m in stored]


def _speculations(agents: SessionAgents, name: str = "agent_speculative_turns") -> dict[str, float]:
    counts: dict[str, float] = {}
    for metric in agents.metrics.registry.collect():
        if metric.name == name:
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["outcome"]] = sample.value
    return counts


@pytest.fixture
def runners(agent_settings: AgentSettings) -> Iterator[tuple[SessionAgents, SessionAgents]]:
    """Two agent runners on one backend, as two service processes (distinct lease owners)."""
    model = ScriptedModel(first_token_delay=0.02)
    a, b = SessionAgents(agent_settings, model), SessionAgents(agent_settings, model)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _turn(agents: SessionAgents, session_id: str, prompt: str, **kwargs: Any) -> tuple[Any, list[str]]:
    streamed: list[str] = []
    result = asyncio.run(agents.run_turn(TurnRequest(session_id, prompt, on_text=streamed.append, **kwargs)))
    return result, streamed


def test_cached_agent_turns_are_confirmed(runners: tuple[SessionAgents, SessionAgents], backend_url: str) -> None:
    a, _ = runners
    sid = f"sp-{uuid.uuid4().hex[:8]}"
    first, _ = _turn(a, sid, "one")
    assert not first.cached and _speculations(a) == {}
    for prompt in ("two", "three"):
        result, streamed = _turn(a, sid, prompt)
        assert result.cached and "".join(streamed) == result.response
    assert _speculations(a) == {"confirmed": 2.0}
    assert _texts(backend_url, sid)[::2] == ["one", "two", "three"]


def test_stale_agent_is_rebuilt_and_nothing_streamed_twice(
    runners: tuple[SessionAgents, SessionAgents], backend_url: str
) -> None:
    a, b = runners
    sid = f"sp-{uuid.uuid4().hex[:8]}"
    _turn(a, sid, "one")
    _turn(b, sid, "two from another process")  # a's cached copy is now stale
    result, streamed = _turn(a, sid, "three")
    assert _speculations(a) == {"mispredicted": 1.0}
    assert not result.cached
    assert result.conversation_length == 6
    assert "".join(streamed) == result.response  # the undone start streamed nothing
    assert _texts(backend_url, sid)[::2] == ["one", "two from another process", "three"]


def test_busy_lease_waits_then_runs_on_current_state(
    runners: tuple[SessionAgents, SessionAgents], backend_url: str
) -> None:
    a, b = runners
    sid = f"sp-{uuid.uuid4().hex[:8]}"
    _turn(a, sid, "one")
    b.backend.acquire_lease(sid, b.owner, 30)  # another writer holds the session

    def release_later() -> None:
        time.sleep(0.3)
        b.backend.release_lease(sid, b.owner)

    releaser = threading.Thread(target=release_later)
    releaser.start()
    result, streamed = _turn(a, sid, "two")
    releaser.join()
    assert _speculations(a) == {"mispredicted": 1.0}
    assert "".join(streamed) == result.response
    assert _texts(backend_url, sid)[::2] == ["one", "two"]


def test_idempotent_retry_on_a_cached_agent_replays(
    runners: tuple[SessionAgents, SessionAgents], backend_url: str
) -> None:
    a, _ = runners
    sid = f"sp-{uuid.uuid4().hex[:8]}"
    _turn(a, sid, "one")
    first, _ = _turn(a, sid, "two", idempotency_key="key-2")
    retry, streamed = _turn(a, sid, "two", idempotency_key="key-2")
    assert retry.replayed and retry.response == first.response and streamed == []
    assert _texts(backend_url, sid)[::2] == ["one", "two"]


def test_off_switch(agent_settings: AgentSettings, backend_url: str) -> None:
    settings = agent_settings.model_copy(update={"speculative_turns": False})
    agents = SessionAgents(settings, ScriptedModel())
    try:
        sid = f"sp-{uuid.uuid4().hex[:8]}"
        _turn(agents, sid, "one")
        result, _ = _turn(agents, sid, "two")
        assert result.cached and _speculations(agents) == {}
    finally:
        agents.close()


def test_each_model_start_is_reported(runners: tuple[SessionAgents, SessionAgents], backend_url: str) -> None:
    """`on_model_start` (what lets a streaming route send its headers while the model works) comes once per model
    call: on a new agent (lease first), on a cached one (speculative), and on the turn run again after a
    misprediction (so twice there)."""
    a, b = runners
    sid = f"sp-{uuid.uuid4().hex[:8]}"
    starts: list[str] = []

    def started() -> None:
        starts.append(threading.current_thread().name)

    def turn(agents: SessionAgents, prompt: str) -> None:
        asyncio.run(agents.run_turn(TurnRequest(sid, prompt, on_text=lambda text: None, on_model_start=started)))

    turn(a, "one")  # a new agent: lease first
    turn(a, "two")  # cached: speculative, confirmed
    assert len(starts) == 2 and _speculations(a) == {"confirmed": 1.0}
    turn(b, "three")  # b writes: a's cached copy is stale now
    turn(a, "four")  # a's speculative start is undone; the turn runs again on the current state
    assert _speculations(a) == {"confirmed": 1.0, "mispredicted": 1.0}
    assert len(starts) == 5
    assert all(name.startswith("agent-turn") for name in starts)  # from the turn's worker thread
