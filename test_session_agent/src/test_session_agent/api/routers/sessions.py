"""Sessions in the backend as the agent service shows them: list, history, delete, snapshots (checkpoints), fork."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response

from service_kit.jsonbody import StrictJSONRoute

from ...agent import AGENT_ID
from ...exceptions import SessionConflictError, SessionNotFoundError
from ...service import session_managers
from ..deps import Agents, Caller, OwnedSessionId, Settings, actor_of
from ..errors import PROBLEM_RESPONSES
from ..schemas import IDENTIFIER_PATTERN, ForkRequest, ForkResponse, HistoryResponse, SnapshotInfo, SnapshotList

router = APIRouter(prefix="/sessions", tags=["sessions"], responses=PROBLEM_RESPONSES, route_class=StrictJSONRoute)


# Query parameters of the backend's list passed through as given (the backend validates them: 422 passed on).
_LIST_FILTERS = ("order_by", "awaiting_input")


@router.get("")
async def list_sessions(
    request: Request,
    agents: Agents,
    caller: Caller,
    actor_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    order_by: Annotated[Literal["created_at", "updated_at"], Query()] = "created_at",
    awaiting_input: Annotated[bool | None, Query()] = None,
) -> Response:
    """Sessions from the backend, newest first (`{items, next_cursor}`; pass `cursor` for the next page).

    `order_by=updated_at` lists the most recently continued first ("recent conversations"); `awaiting_input=true`
    keeps sessions whose agent waits for a human (a pending interrupt); `metadata.<key>=<value>` filters on session
    metadata. With access control on, only the caller's own sessions. Pages are bounded in rows and bytes by the
    backend and passed through as they come: re-serializing them took eight concurrent 1,000-session pages to
    2.6 GB (hardening round 2), hence the raw response.
    """
    actor_id = actor_of(caller, actor_id)
    filters = {k: v for k, v in request.query_params.items() if k in _LIST_FILTERS or k.startswith("metadata.")}
    page = await asyncio.to_thread(agents.backend.list_sessions_json, actor_id, limit, cursor, filters)
    return Response(page, media_type="application/json")


@router.get("/{session_id}/history", response_model=HistoryResponse)
async def history(session_id: OwnedSessionId, agents: Agents, settings: Settings) -> HistoryResponse:
    """The session's conversation in order (a snapshot session's: its latest snapshot's)."""
    messages = await asyncio.to_thread(session_managers.repository_history, agents.repository, session_id, AGENT_ID)
    if messages is None:
        raise SessionNotFoundError(f"session {session_id!r} not found")
    if settings.session_manager == "snapshot":
        messages = await session_managers.snapshot_history(settings, session_id, AGENT_ID)
    return HistoryResponse.model_validate({"session_id": session_id, "messages": messages})


@router.delete("/{session_id}", status_code=204)
async def delete_session(session_id: OwnedSessionId, agents: Agents) -> Response:
    """Delete the session's data in the backend (its snapshots go with its row) and drop its cached agent."""
    await agents.delete(session_id)
    return Response(status_code=204)


async def _require_session(agents: Agents, session_id: str) -> None:
    if await asyncio.to_thread(agents.repository.read_session, session_id) is None:
        raise SessionNotFoundError(f"session {session_id!r} not found")


@router.get("/{session_id}/snapshots", response_model=SnapshotList)
async def list_snapshots(session_id: OwnedSessionId, agents: Agents, settings: Settings) -> SnapshotList:
    """The session's immutable snapshots (checkpoints), oldest first; repository sessions have none."""
    await _require_session(agents, session_id)
    ids = await session_managers.list_snapshots(settings, session_id, AGENT_ID)
    items = [SnapshotInfo(snapshot_id=i, created_at=session_managers.snapshot_created_at(i)) for i in ids]
    return SnapshotList(session_id=session_id, items=items)


@router.post("/{session_id}/fork", status_code=201, response_model=ForkResponse)
async def fork_session(
    session_id: OwnedSessionId, body: ForkRequest, agents: Agents, settings: Settings, caller: Caller
) -> ForkResponse:
    """A new session from the latest state or from one snapshot; the original is untouched.

    404 unknown session or snapshot, 409 `new_session_id` taken.
    """
    await _require_session(agents, session_id)
    new_session_id = body.new_session_id or uuid.uuid4().hex
    try:
        messages = await session_managers.fork_session(
            settings,
            agents.backend,
            session_id,
            new_session_id,
            AGENT_ID,
            snapshot_id=body.snapshot_id,
            actor_id=actor_of(caller, body.actor_id),
        )
    except session_managers.SnapshotNotFoundError as e:
        raise HTTPException(404, str(e)) from e
    except SessionConflictError as e:
        raise HTTPException(409, f"session {new_session_id!r} already exists") from e
    return ForkResponse(
        session_id=new_session_id, forked_from=session_id, snapshot_id=body.snapshot_id, conversation_length=messages
    )
