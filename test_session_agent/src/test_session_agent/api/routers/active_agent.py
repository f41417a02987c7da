"""`/api/v1/sessions/{session_id}/active-agent`: the agent profile a session's turns go to, stored in PostgreSQL.

While set (and until its TTL runs out), every replica sends the session's turns to that profile; DELETE returns
the session to its own. A manager profile sets it itself with the `handoff` tool.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Response

from ...exceptions import AgentProfileNotFoundError
from ..deps import Agents, Caller, OwnedSessionId, ProfileSessionsDep, profile_viewer
from ..errors import PROBLEM_RESPONSES
from ..schemas import ActiveAgentPublic, ActiveAgentSet

router = APIRouter(prefix="/api/v1/sessions", tags=["active agent"], responses=PROBLEM_RESPONSES)

# With access control on, another actor's session is 404 here as everywhere (`OwnedSessionId`).
SessionId = OwnedSessionId


@router.get("/{session_id}/active-agent", response_model=ActiveAgentPublic)
async def get_active_agent(session_id: SessionId, agents: Agents) -> ActiveAgentPublic:
    """The profile the session's turns go to (404: none set, lapsed, or no such session)."""
    active = await asyncio.to_thread(agents.backend.get_active_agent, session_id)
    if active is None:
        raise HTTPException(404, f"session {session_id!r} has no active agent")
    return ActiveAgentPublic.model_validate(active)


@router.put("/{session_id}/active-agent", response_model=ActiveAgentPublic)
async def set_active_agent(
    session_id: SessionId, body: ActiveAgentSet, agents: Agents, sessions: ProfileSessionsDep, caller: Caller
) -> ActiveAgentPublic:
    """Send the session's turns to the profile `agent_id` (422: no such profile), for `ttl_seconds` if given.

    With access control on, only a profile the caller may use (own, shared or ownerless): another actor's unshared
    profile is 422 as an absent one.
    """
    if caller is not None:
        try:
            await asyncio.to_thread(sessions.profile, body.agent_id, profile_viewer(caller))
        except AgentProfileNotFoundError:
            raise HTTPException(422, f"agent {body.agent_id!r} not found") from None
    active = await asyncio.to_thread(agents.backend.set_active_agent, session_id, body.agent_id, body.ttl_seconds)
    return ActiveAgentPublic.model_validate(active)


@router.delete("/{session_id}/active-agent", status_code=204)
async def delete_active_agent(session_id: SessionId, agents: Agents) -> Response:
    """Return the session to its own profile (404 when none is set)."""
    await asyncio.to_thread(agents.backend.delete_active_agent, session_id)
    return Response(status_code=204)
