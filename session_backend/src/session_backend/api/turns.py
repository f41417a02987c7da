"""Routes of a session's turns (`/v1/sessions/{session_id}/...`): batch, lease, turn outcome, active agent."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import Path, Query, Response

from ..schemas.common import Token
from ..schemas.turns import (
    ActiveAgentPublic,
    ActiveAgentSet,
    BatchRequest,
    BatchResult,
    LeasePublic,
    LeaseRequest,
    TurnPublic,
)
from .deps import SessionId, Turns, json_response, v1_router
from .errors import PROBLEM_RESPONSES

router = v1_router("/sessions/{session_id}", tags=["turns"])


@router.post("/batch", response_model=BatchResult, responses={412: PROBLEM_RESPONSES[409]})
async def apply_batch(session_id: SessionId, body: BatchRequest, store: Turns) -> Response:
    """Apply one turn's writes (message creates/updates, agent updates) in order, in one transaction.

    Any failure (404, 409, 412, 422) leaves nothing written. A retry of a committed batch is safe when its agent
    updates carry no `if_version`, or is refused with 412 when they do.
    """
    operations = [op.model_dump() for op in body.operations]
    turn = body.turn.model_dump() if body.turn is not None else None
    result = await store.apply_batch(
        session_id,
        operations,
        lease_owner=body.lease_owner,
        incarnation=body.incarnation,
        turn=turn,
        release_lease=body.release_lease,
    )
    return json_response(orjson.dumps(result).decode())


@router.post("/lease", response_model=LeasePublic)
async def acquire_lease(session_id: SessionId, body: LeaseRequest, store: Turns) -> Response:
    """Take, renew (same owner) or take over (expired) the session's single-writer lease.

    409 with `Retry-After` while another owner holds it. The session need not exist yet.
    """
    lease = await store.acquire_lease(session_id, body.owner, body.ttl_seconds, body.idempotency_key)
    return json_response(orjson.dumps(lease).decode())


@router.post("/turns/{turn_id}/resolve", response_model=TurnPublic)
async def resolve_turn(session_id: SessionId, turn_id: Annotated[Token, Path()], store: Turns) -> Response:
    """Decide the outcome of a turn whose writer lost the answer to its batch.

    `committed`, or `aborted` (recorded now if the batch has not landed, so it never will). 404: the session does not
    exist, so nothing of the turn is stored.
    """
    return json_response(await store.resolve_turn(session_id, turn_id))


@router.delete("/lease", status_code=204)
async def release_lease(session_id: SessionId, store: Turns, owner: Annotated[Token, Query()]) -> Response:
    """Release the lease held by `owner` (404 when it holds none)."""
    await store.release_lease(session_id, owner)
    return Response(status_code=204)


@router.get("/active-agent", response_model=ActiveAgentPublic)
async def get_active_agent(session_id: SessionId, store: Turns) -> Response:
    """The agent profile the session's turns go to (404: none set, lapsed, or no such session)."""
    return json_response(await store.get_active_agent(session_id))


@router.put("/active-agent", response_model=ActiveAgentPublic)
async def set_active_agent(session_id: SessionId, body: ActiveAgentSet, store: Turns) -> Response:
    """Route the session's turns to the profile `agent_id` (422: no such profile), for `ttl_seconds` if given."""
    return json_response(await store.set_active_agent(session_id, body.agent_id, body.ttl_seconds))


@router.delete("/active-agent", status_code=204)
async def delete_active_agent(session_id: SessionId, store: Turns) -> Response:
    """Return the session to its own profile (404 when no active agent is set)."""
    await store.delete_active_agent(session_id)
    return Response(status_code=204)
