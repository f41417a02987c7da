"""HTTP routes of the session backend (v1). Thin: parse, call the store, return the JSON text it gives back."""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import PROBLEM_RESPONSES
from .jsonbody import StrictJSONRoute
from .schemas import (
    IDENTIFIER_PATTERN,
    ActiveAgentPublic,
    ActiveAgentSet,
    AgentBody,
    AgentPublic,
    AgentUpdate,
    BatchRequest,
    BatchResult,
    Identifier,
    LeasePublic,
    LeaseRequest,
    MessageBody,
    MessagePublic,
    MultiAgentCreate,
    MultiAgentPublic,
    MultiAgentUpdate,
    SessionCreate,
    SessionFork,
    SessionForkPublic,
    SessionPage,
    SessionPublic,
    TurnId,
    TurnPublic,
)
from .settings import Settings
from .store import SessionStore, StoredAgent
from .validators import json_size

JSON = "application/json"
_bearer = HTTPBearer(auto_error=False)


# Dependencies are coroutines: FastAPI runs plain functions on a worker thread, a hop per request.


async def get_store(request: Request) -> SessionStore:
    """The store created in the app's lifespan."""
    store: SessionStore = request.app.state.store
    return store


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """When `SESSION_BACKEND_API_KEY` is set, require `Authorization: Bearer <key>` (constant-time compare)."""
    settings: Settings = request.app.state.settings
    if settings.api_key is None:
        return
    supplied = credentials.credentials if credentials else ""
    if not hmac.compare_digest(supplied.encode(), settings.api_key.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


Store = Annotated[SessionStore, Depends(get_store)]
SessionId = Annotated[Identifier, Path()]
AgentId = Annotated[Identifier, Path()]
MultiAgentId = Annotated[Identifier, Path()]
MessageIdPath = Annotated[int, Path(ge=0, le=2_147_483_647)]


def _json(text: str, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(content=text, status_code=status_code, media_type=JSON, headers=headers)


def _agent(agent: StoredAgent, status_code: int = 200) -> Response:
    # The version is the ETag: a client sends it back in If-Match for a conditional update.
    return _json(agent.body, status_code, {"ETag": f'"{agent.version}"'})


def _encode_cursor(key: tuple[datetime, str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([key[0].isoformat(), key[1]])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, session_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created_at), str(session_id)
    except (binascii.Error, ValueError, TypeError) as e:
        raise HTTPException(422, "cursor is not one this service returned") from e


def _parse_if_match(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError as e:
        raise HTTPException(422, "If-Match must be an agent version as returned in ETag") from e


# Session metadata is for small labels: larger values would make every list page heavy (hardening round 2).
MAX_METADATA_BYTES = 64 * 1024

router = APIRouter(
    prefix="/v1", dependencies=[Depends(require_api_key)], responses=PROBLEM_RESPONSES, route_class=StrictJSONRoute
)


@router.post("/sessions", status_code=201, response_model=SessionPublic)
async def create_session(body: SessionCreate, store: Store) -> Response:
    """Create a session (409 when a live one has that id, 413 when its metadata is over `MAX_METADATA_BYTES`)."""
    try:
        size = json_size(body.metadata)
    except ValueError as e:
        raise HTTPException(422, f"metadata: {e}") from e
    if size > MAX_METADATA_BYTES:
        raise HTTPException(413, f"session metadata is larger than {MAX_METADATA_BYTES} bytes")
    text = await store.create_session(
        body.session_id,
        body.session_type,
        actor_id=body.actor_id,
        metadata=body.metadata,
        created_at=body.created_at,
        updated_at=body.updated_at,
        ttl_seconds=body.ttl_seconds,
    )
    return _json(text, 201)


@router.get("/sessions", response_model=SessionPage)
async def list_sessions(
    store: Store,
    actor_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN, max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """List live sessions newest first, optionally of one actor, with keyset pagination."""
    after = _decode_cursor(cursor) if cursor else None
    items, next_key = await store.list_sessions(actor_id=actor_id, limit=limit, after=after)
    next_cursor = orjson.dumps(_encode_cursor(next_key) if next_key else None).decode()
    return _json(f'{{"items":[{",".join(items)}],"next_cursor":{next_cursor}}}')


@router.get("/sessions/{session_id}", response_model=SessionPublic)
async def get_session(session_id: SessionId, store: Store) -> Response:
    """Read a session."""
    return _json(await store.get_session(session_id))


@router.delete("/sessions/{session_id}", status_code=204)
async def delete_session(session_id: SessionId, store: Store) -> Response:
    """Delete a session and everything in it."""
    await store.delete_session(session_id)
    return Response(status_code=204)


@router.post("/sessions/{session_id}/agents", status_code=201, response_model=AgentPublic)
async def create_agent(session_id: SessionId, body: AgentBody, store: Store) -> Response:
    """Create an agent in a session."""
    return _agent(await store.create_agent(session_id, body.model_dump()), 201)


@router.get("/sessions/{session_id}/agents/{agent_id}", response_model=AgentPublic)
async def get_agent(session_id: SessionId, agent_id: AgentId, store: Store) -> Response:
    """Read an agent; its `version` is also the `ETag`."""
    return _agent(await store.get_agent(session_id, agent_id))


@router.put(
    "/sessions/{session_id}/agents/{agent_id}", response_model=AgentPublic, responses={412: PROBLEM_RESPONSES[409]}
)
async def update_agent(
    session_id: SessionId,
    agent_id: AgentId,
    body: AgentUpdate,
    store: Store,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Replace an agent's state; with `If-Match: "<version>"` a stale write is 412."""
    if body.agent_id != agent_id:
        raise HTTPException(422, "agent_id in the body differs from the path")
    return _agent(
        await store.update_agent(session_id, agent_id, body.model_dump(), if_version=_parse_if_match(if_match))
    )


@router.post(
    "/sessions/{session_id}/agents/{agent_id}/messages",
    status_code=201,
    response_model=MessagePublic,
    responses={200: {"model": MessagePublic, "description": "an identical message already existed (a retry)"}},
)
async def create_message(session_id: SessionId, agent_id: AgentId, body: MessageBody, store: Store) -> Response:
    """Append a message; 200 when the identical message is already stored, 409 when a different one is."""
    inserted, text = await store.create_message(session_id, agent_id, body.model_dump())
    return _json(text, 201 if inserted else 200)


@router.get("/sessions/{session_id}/agents/{agent_id}/messages", response_model=list[MessagePublic])
async def list_messages(
    session_id: SessionId,
    agent_id: AgentId,
    store: Store,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """List an agent's messages ordered by message_id; `offset` is a position."""
    return _json(await store.list_messages(session_id, agent_id, offset=offset, limit=limit))


@router.get("/sessions/{session_id}/agents/{agent_id}/messages/{message_id}", response_model=MessagePublic)
async def get_message(session_id: SessionId, agent_id: AgentId, message_id: MessageIdPath, store: Store) -> Response:
    """Read one message."""
    return _json(await store.get_message(session_id, agent_id, message_id))


@router.put("/sessions/{session_id}/agents/{agent_id}/messages/{message_id}", response_model=MessagePublic)
async def update_message(
    session_id: SessionId, agent_id: AgentId, message_id: MessageIdPath, body: MessageBody, store: Store
) -> Response:
    """Replace a message (Strands does this when a guardrail redacts it)."""
    if body.message_id != message_id:
        raise HTTPException(422, "message_id in the body differs from the path")
    return _json(await store.update_message(session_id, agent_id, message_id, body.model_dump()))


@router.post("/sessions/{session_id}/multi-agents", status_code=201, response_model=MultiAgentPublic)
async def create_multi_agent(session_id: SessionId, body: MultiAgentCreate, store: Store) -> Response:
    """Store a multi-agent's serialized state."""
    return _json(await store.create_multi_agent(session_id, body.id, body.state), 201)


@router.get("/sessions/{session_id}/multi-agents/{multi_agent_id}", response_model=MultiAgentPublic)
async def get_multi_agent(session_id: SessionId, multi_agent_id: MultiAgentId, store: Store) -> Response:
    """Read a multi-agent's state."""
    return _json(await store.get_multi_agent(session_id, multi_agent_id))


@router.put("/sessions/{session_id}/multi-agents/{multi_agent_id}", response_model=MultiAgentPublic)
async def update_multi_agent(
    session_id: SessionId, multi_agent_id: MultiAgentId, body: MultiAgentUpdate, store: Store
) -> Response:
    """Replace a multi-agent's state."""
    if body.id is not None and body.id != multi_agent_id:
        raise HTTPException(422, "id in the body differs from the path")
    return _json(await store.update_multi_agent(session_id, multi_agent_id, body.state))


@router.post("/sessions/{session_id}/batch", response_model=BatchResult, responses={412: PROBLEM_RESPONSES[409]})
async def apply_batch(session_id: SessionId, body: BatchRequest, store: Store) -> Response:
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
    return _json(orjson.dumps(result).decode())


@router.post("/sessions/{session_id}/lease", response_model=LeasePublic)
async def acquire_lease(session_id: SessionId, body: LeaseRequest, store: Store) -> Response:
    """Take, renew (same owner) or take over (expired) the session's single-writer lease.

    409 with `Retry-After` while another owner holds it. The session need not exist yet.
    """
    lease = await store.acquire_lease(session_id, body.owner, body.ttl_seconds, body.idempotency_key)
    return _json(orjson.dumps(lease).decode())


@router.post("/sessions/{session_id}/turns/{turn_id}/resolve", response_model=TurnPublic)
async def resolve_turn(session_id: SessionId, turn_id: Annotated[TurnId, Path()], store: Store) -> Response:
    """Decide the outcome of a turn whose writer lost the answer to its batch.

    `committed`, or `aborted` (recorded now if the batch has not landed, so it never will). 404: the session does not
    exist, so nothing of the turn is stored.
    """
    return _json(await store.resolve_turn(session_id, turn_id))


@router.delete("/sessions/{session_id}/lease", status_code=204)
async def release_lease(
    session_id: SessionId, store: Store, owner: Annotated[str, Query(pattern=r"^[\x21-\x7e]{1,256}$")]
) -> Response:
    """Release the lease held by `owner` (404 when it holds none)."""
    await store.release_lease(session_id, owner)
    return Response(status_code=204)


@router.get("/sessions/{session_id}/active-agent", response_model=ActiveAgentPublic)
async def get_active_agent(session_id: SessionId, store: Store) -> Response:
    """The agent profile the session's turns go to (404: none set, lapsed, or no such session)."""
    return _json(await store.get_active_agent(session_id))


@router.put("/sessions/{session_id}/active-agent", response_model=ActiveAgentPublic)
async def set_active_agent(session_id: SessionId, body: ActiveAgentSet, store: Store) -> Response:
    """Route the session's turns to the profile `agent_id` (422: no such profile), for `ttl_seconds` if given."""
    return _json(await store.set_active_agent(session_id, body.agent_id, body.ttl_seconds))


@router.delete("/sessions/{session_id}/active-agent", status_code=204)
async def delete_active_agent(session_id: SessionId, store: Store) -> Response:
    """Return the session to its own profile (404 when no active agent is set)."""
    await store.delete_active_agent(session_id)
    return Response(status_code=204)


@router.post("/sessions/{session_id}/fork", status_code=201, response_model=SessionForkPublic)
async def fork_session(session_id: SessionId, body: SessionFork, store: Store) -> Response:
    """Copy the session (agents, messages, multi-agent state) under `new_session_id`, server-side in one statement.

    404 unknown source, 409 the new id is taken; the source is untouched.
    """
    session, counts = await store.fork_session(
        session_id, body.new_session_id, ttl_seconds=body.ttl_seconds, actor_id=body.actor_id
    )
    return _json(f'{{"session":{session},{orjson.dumps(counts).decode()[1:]}', 201)
