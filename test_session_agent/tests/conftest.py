"""Fixtures of the agent service tests: the service app in-process on a scripted model, the backend as a process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from test_session_agent.api.app import create_app
from test_session_agent.models.scripted import ScriptedModel
from test_session_agent.settings import AgentSettings


@pytest.fixture(scope="module")
def agent_settings(backend_url: str) -> AgentSettings:
    """Settings of an agent service using the module's backend and the scripted model."""
    # A generous recall budget: tests expecting memories must not miss them on a loaded machine (the budget itself is
    # tested with its default in test_agents_api.py).
    return AgentSettings.model_validate(
        {
            "backend_url": backend_url,
            "model_provider": "scripted",
            "backend_api_key": None,
            "max_prompt_chars": 2000,
            "memory_recall_budget_seconds": 30,
        }
    )


@pytest.fixture(scope="module")
def service(agent_settings: AgentSettings) -> Iterator[TestClient]:
    """A client of the agent service app (lifespan run), model: `ScriptedModel()`."""
    with TestClient(create_app(agent_settings, model=ScriptedModel())) as client:
        yield client
