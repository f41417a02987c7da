"""Dependencies of the agent service's routes, as `Annotated` aliases (`agents: Agents`, `settings: Settings`, ...)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from ..agent import SessionAgents
from ..invocations import ProfileSessions
from ..memory import PostgreSQLMemoryStore
from ..settings import AgentSettings
from .schemas import Identifier

# Dependencies are coroutines: FastAPI runs plain functions on a worker thread, a hop per request.


async def get_agents(request: Request) -> SessionAgents:
    """The agent runner created in the app's lifespan."""
    agents: SessionAgents = request.app.state.agents
    return agents


async def get_app_settings(request: Request) -> AgentSettings:
    """The settings the app was created with."""
    settings: AgentSettings = request.app.state.settings
    return settings


async def get_profile_sessions(request: Request) -> ProfileSessions:
    """Agent profiles and their sessions (created in the app's lifespan)."""
    sessions: ProfileSessions = request.app.state.profile_sessions
    return sessions


async def get_actor_memories(actor_id: Annotated[Identifier, Path()], request: Request) -> PostgreSQLMemoryStore:
    """The memory store of the path's actor, on the service's backend client."""
    agents: SessionAgents = request.app.state.agents
    return PostgreSQLMemoryStore(actor_id, client=agents.client)


Agents = Annotated[SessionAgents, Depends(get_agents)]
ProfileSessionsDep = Annotated[ProfileSessions, Depends(get_profile_sessions)]
ActorMemories = Annotated[PostgreSQLMemoryStore, Depends(get_actor_memories)]
Settings = Annotated[AgentSettings, Depends(get_app_settings)]
