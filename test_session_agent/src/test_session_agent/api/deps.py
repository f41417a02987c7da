"""Dependencies of the agent service's routes, as `Annotated` aliases (`agents: Agents`, `settings: Settings`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Request

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
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,256}$",
        description="A retry with the same key on the same session returns the first answer and stores nothing.",
    ),
]
Settings = Annotated[AgentSettings, Depends(get_app_settings)]
DeviceId = Annotated[
    uuid.UUID | None,
    Header(
        alias="X-Device-ID",
        description="A UUID naming the device: it is the actor, and without a session_id its live session goes on.",
    ),
]
