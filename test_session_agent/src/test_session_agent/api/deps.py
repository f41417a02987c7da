"""Dependencies of the agent service's routes, as `Annotated` aliases (`agents: Agents`, `settings: Settings`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..agent import SessionAgents
from ..settings import AgentSettings

# Dependencies are coroutines: FastAPI runs plain functions on a worker thread, a hop per request.


async def get_agents(request: Request) -> SessionAgents:
    """The agent runner created in the app's lifespan."""
    agents: SessionAgents = request.app.state.agents
    return agents


async def get_app_settings(request: Request) -> AgentSettings:
    """The settings the app was created with."""
    settings: AgentSettings = request.app.state.settings
    return settings


Agents = Annotated[SessionAgents, Depends(get_agents)]
Settings = Annotated[AgentSettings, Depends(get_app_settings)]
