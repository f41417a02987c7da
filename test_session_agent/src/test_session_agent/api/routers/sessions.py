"""Sessions in the backend as the agent service shows them: list, history, delete."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Response

from ...exceptions import SessionNotFoundError
from ..deps import Agents, Caller, OwnedSessionId, actor_of
from ..errors import PROBLEM_RESPONSES
from ..schemas import IDENTIFIER_PATTERN, HistoryResponse

router = APIRouter(prefix="/sessions", tags=["sessions"], responses=PROBLEM_RESPONSES)


@router.get("")
async def list_sessions(
    agents: Agents,
    caller: Caller,
    actor_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """Sessions from the backend, newest first (`{items, next_cursor}`; pass `cursor` for the next page).

    With access control on, only the caller's own sessions. Pages are bounded in rows and bytes by the backend and
    passed through as they come: re-serializing them took eight concurrent 1,000-session pages to 2.6 GB (hardening
    round 2), hence the raw response.
    """
    actor_id = actor_of(caller, actor_id)
    page = await asyncio.to_thread(agents.repository.list_sessions_json, actor_id, limit, cursor)
    return Response(page, media_type="application/json")


@router.get("/{session_id}/history", response_model=HistoryResponse)
async def history(session_id: OwnedSessionId, agents: Agents) -> HistoryResponse:
    """The session's conversation in order."""
    messages = await asyncio.to_thread(agents.history, session_id)
    if messages is None:
        raise SessionNotFoundError(f"session {session_id!r} not found")
    return HistoryResponse.model_validate({"session_id": session_id, "messages": messages})


@router.delete("/{session_id}", status_code=204)
async def delete_session(session_id: OwnedSessionId, agents: Agents) -> Response:
    """Delete the session's data in the backend and drop its cached agent."""
    await agents.delete(session_id)
    return Response(status_code=204)
