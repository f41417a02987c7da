"""`AgentProfileClient` against a real backend process: the whole profile life cycle and its errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from test_session_agent import AgentProfile, AgentProfileClient, BackendRequestError, SessionConflictError

pytestmark = pytest.mark.integration


@pytest.fixture
def profiles(backend_url: str) -> Iterator[AgentProfileClient]:
    with AgentProfileClient(backend_url) as client:
        yield client


def test_life_cycle(profiles: AgentProfileClient) -> None:
    created = profiles.create(
        "Support",
        system_prompt="Be brief.",
        model_config={"provider": "scripted", "max_tokens": 200},
        tools=["calculator"],
    )
    assert isinstance(created, AgentProfile) and len(created.agent_id) == 32
    assert profiles.get(created.agent_id) == created
    updated = profiles.update(created.agent_id, "Support v2", tools=["calculator", "current_time"])
    assert updated is not None
    assert (updated.name, updated.system_prompt, updated.model_config) == ("Support v2", None, {})
    assert updated.created_at == created.created_at and updated.updated_at > created.updated_at
    assert profiles.delete(created.agent_id) is True
    assert profiles.get(created.agent_id) is None
    assert profiles.update(created.agent_id, "gone") is None
    assert profiles.delete(created.agent_id) is False


def test_chosen_id_conflicts_and_invalid_profiles(profiles: AgentProfileClient) -> None:
    agent_id = f"p-{uuid.uuid4().hex[:8]}"
    assert profiles.create("first", agent_id=agent_id).agent_id == agent_id
    with pytest.raises(SessionConflictError):
        profiles.create("again", agent_id=agent_id)
    with pytest.raises(BackendRequestError) as refused:
        profiles.create("x", model_config={"temperature": 9})
    assert refused.value.status == 422


def test_pages_cover_every_profile(profiles: AgentProfileClient) -> None:
    prefix = f"pg-{uuid.uuid4().hex[:6]}"
    ids = [profiles.create("p", agent_id=f"{prefix}-{i}").agent_id for i in range(5)]
    page = profiles.list_profiles(limit=2)
    assert len(page.items) == 2 and page.next_cursor is not None
    every = [p.agent_id for p in profiles.iter_all(page_size=2)]
    assert every == sorted(every) and [i for i in every if i.startswith(prefix)] == ids
