"""Routes of sessions and what they hold (`/v1/sessions`): agents, messages, multi-agent state, forks.

Thin: parse, call the store, return the JSON text it gives back.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ..db.sessions import StoredAgent
from ..schemas.common import IDENTIFIER_PATTERN, json_size
from ..schemas.sessions import (
    AgentBody,
    AgentPublic,
    AgentUpdate,
    MessageBody,
    MessagePublic,
    MultiAgentCreate,
    MultiAgentPublic,
    MultiAgentUpdate,
    SessionConvert,
    SessionConverted,
    SessionCreate,
    SessionFilter,
    SessionFork,
    SessionForkPublic,
    SessionPage,
    SessionPublic,
)
from .deps import AgentId, Converter, Forks, MessageIdPath, MultiAgentId, SessionId, Sessions, json_response, v1_router
from .errors import PROBLEM_RESPONSES

router = v1_router("/sessions", tags=["sessions"])

# On a message list: whether the agent has a context window recorded (`recorded` / `none`).
CONTEXT_WINDOW_HEADER = "Context-Window"


def _agent(agent: StoredAgent, status_code: int = 200) -> Response:
    # The version is the ETag: a client sends it back in If-Match for a conditional update.
    return json_response(agent.body, status_code, {"ETag": f'"{agent.version}"'})


def _encode_cursor(key: tuple[datetime, str], order_by: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([key[0].isoformat(), key[1], order_by])).decode().rstrip("=")


def _decode_cursor(cursor: str, order_by: str) -> tuple[datetime, str]:
    try:
        # Cursors issued before `order_by` existed hold two fields and mean `created_at`.
        at, session_id, *rest = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = datetime.fromisoformat(at), str(session_id)
    except (binascii.Error, ValueError, TypeError) as e:
        raise HTTPException(422, "cursor is not one this service returned") from e
    if (rest[0] if rest else "created_at") != order_by:
        raise HTTPException(422, "cursor was issued for another order_by")
    return key


def _session_filter(request: Request, order_by: str, awaiting_input: bool | None) -> SessionFilter:
    metadata = {k.removeprefix("metadata."): v for k, v in request.query_params.items() if k.startswith("metadata.")}
    try:
        return SessionFilter.model_validate(
            {"order_by": order_by, "awaiting_input": awaiting_input, "metadata": metadata}
        )
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from e


def _parse_if_match(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError as e:
        raise HTTPException(422, "If-Match must be an agent version as returned in ETag") from e


# Session metadata is for small labels: larger values would make every list page heavy (hardening round 2).
MAX_METADATA_BYTES = 64 * 1024


@router.post("", status_code=201, response_model=SessionPublic)
async def create_session(body: SessionCreate, store: Sessions) -> Response:
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
    return json_response(text, 201)


@router.get("", response_model=SessionPage)
async def list_sessions(
    request: Request,
    store: Sessions,
    actor_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN, max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    order_by: Annotated[Literal["created_at", "updated_at"], Query()] = "created_at",
    awaiting_input: Annotated[bool | None, Query()] = None,
) -> Response:
    """List live sessions newest first (`order_by`), optionally of one actor, with keyset pagination.

    `awaiting_input=true` keeps sessions whose agent holds a pending interrupt; `metadata.<key>=<value>` (repeatable
    with other keys) keeps sessions whose metadata holds that value (see `SessionFilter`).
    """
    filters = _session_filter(request, order_by, awaiting_input)
    after = _decode_cursor(cursor, order_by) if cursor else None
    items, next_key = await store.list_sessions(actor_id=actor_id, limit=limit, after=after, filters=filters)
    next_cursor = orjson.dumps(_encode_cursor(next_key, order_by) if next_key else None).decode()
    return json_response(f'{{"items":[{",".join(items)}],"next_cursor":{next_cursor}}}')


@router.get("/{session_id}", response_model=SessionPublic)
async def get_session(session_id: SessionId, store: Sessions) -> Response:
    """Read a session."""
    return json_response(await store.get_session(session_id))


@router.delete("/{session_id}", status_code=204)
async def delete_session(
    session_id: SessionId, store: Sessions, forget_memories: Annotated[bool, Query()] = False
) -> Response:
    """Delete a session and everything in it; `forget_memories=true` also deletes the memories extracted from it."""
    await store.delete_session(session_id, forget_memories=forget_memories)
    return Response(status_code=204)


@router.post("/{session_id}/agents", status_code=201, response_model=AgentPublic)
async def create_agent(session_id: SessionId, body: AgentBody, store: Sessions) -> Response:
    """Create an agent in a session."""
    return _agent(await store.create_agent(session_id, body.model_dump()), 201)


@router.get("/{session_id}/agents/{agent_id}", response_model=AgentPublic)
async def get_agent(session_id: SessionId, agent_id: AgentId, store: Sessions) -> Response:
    """Read an agent; its `version` is also the `ETag`."""
    return _agent(await store.get_agent(session_id, agent_id))


@router.put("/{session_id}/agents/{agent_id}", response_model=AgentPublic, responses={412: PROBLEM_RESPONSES[409]})
async def update_agent(
    session_id: SessionId,
    agent_id: AgentId,
    body: AgentUpdate,
    store: Sessions,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Replace an agent's state; with `If-Match: "<version>"` a stale write is 412."""
    if body.agent_id != agent_id:
        raise HTTPException(422, "agent_id in the body differs from the path")
    return _agent(
        await store.update_agent(session_id, agent_id, body.model_dump(), if_version=_parse_if_match(if_match))
    )


@router.post(
    "/{session_id}/agents/{agent_id}/messages",
    status_code=201,
    response_model=MessagePublic,
    responses={200: {"model": MessagePublic, "description": "an identical message already existed (a retry)"}},
)
async def create_message(session_id: SessionId, agent_id: AgentId, body: MessageBody, store: Sessions) -> Response:
    """Append a message; 200 when the identical message is already stored, 409 when a different one is."""
    inserted, text = await store.create_message(session_id, agent_id, body.model_dump())
    return json_response(text, 201 if inserted else 200)


@router.get("/{session_id}/agents/{agent_id}/messages", response_model=list[MessagePublic])
async def list_messages(
    session_id: SessionId,
    agent_id: AgentId,
    store: Sessions,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """List an agent's messages ordered by message_id; `offset` is a position.

    The `Context-Window` header says whether the agent has a context window recorded (`recorded` or `none`), so a
    restore asks for it only when there is one.
    """
    text, windowed = await store.list_messages(session_id, agent_id, offset=offset, limit=limit)
    return json_response(text, headers={CONTEXT_WINDOW_HEADER: "recorded" if windowed else "none"})


@router.get("/{session_id}/agents/{agent_id}/messages/{message_id}", response_model=MessagePublic)
async def get_message(session_id: SessionId, agent_id: AgentId, message_id: MessageIdPath, store: Sessions) -> Response:
    """Read one message."""
    return json_response(await store.get_message(session_id, agent_id, message_id))


@router.put("/{session_id}/agents/{agent_id}/messages/{message_id}", response_model=MessagePublic)
async def update_message(
    session_id: SessionId,
    agent_id: AgentId,
    message_id: MessageIdPath,
    body: MessageBody,
    store: Sessions,
    forget_memories: Annotated[bool, Query()] = True,
) -> Response:
    """Replace a message (Strands does this when a guardrail redacts it).

    The memories extracted from the message (their `source` names it) are deleted with it unless `forget_memories`
    is false.
    """
    if body.message_id != message_id:
        raise HTTPException(422, "message_id in the body differs from the path")
    updated = await store.update_message(
        session_id, agent_id, message_id, body.model_dump(), forget_memories=forget_memories
    )
    return json_response(updated)


@router.post("/{session_id}/multi-agents", status_code=201, response_model=MultiAgentPublic)
async def create_multi_agent(session_id: SessionId, body: MultiAgentCreate, store: Sessions) -> Response:
    """Store a multi-agent's serialized state."""
    return json_response(await store.create_multi_agent(session_id, body.id, body.state), 201)


@router.get("/{session_id}/multi-agents/{multi_agent_id}", response_model=MultiAgentPublic)
async def get_multi_agent(session_id: SessionId, multi_agent_id: MultiAgentId, store: Sessions) -> Response:
    """Read a multi-agent's state."""
    return json_response(await store.get_multi_agent(session_id, multi_agent_id))


@router.put("/{session_id}/multi-agents/{multi_agent_id}", response_model=MultiAgentPublic)
async def update_multi_agent(
    session_id: SessionId, multi_agent_id: MultiAgentId, body: MultiAgentUpdate, store: Sessions
) -> Response:
    """Replace a multi-agent's state."""
    if body.id is not None and body.id != multi_agent_id:
        raise HTTPException(422, "id in the body differs from the path")
    return json_response(await store.update_multi_agent(session_id, multi_agent_id, body.state))


@router.post("/{session_id}/fork", status_code=201, response_model=SessionForkPublic)
async def fork_session(session_id: SessionId, body: SessionFork, forks: Forks) -> Response:
    """Copy the session (agents, messages, multi-agent state) under `new_session_id`, server-side in one statement.

    404 unknown source, 409 the new id is taken; the source is untouched.
    """
    session, counts = await forks.fork_session(
        session_id, body.new_session_id, ttl_seconds=body.ttl_seconds, actor_id=body.actor_id
    )
    return json_response(f'{{"session":{session},{orjson.dumps(counts).decode()[1:]}', 201)


@router.post("/{session_id}/convert", response_model=SessionConverted, responses=PROBLEM_RESPONSES)
async def convert_session(session_id: SessionId, body: SessionConvert, converter: Converter) -> SessionConverted:
    """Convert the session's message log to Strands' `SnapshotSessionManager` snapshots, or back (one transaction).

    404: no such session (or no snapshot of it); 409: the target holds an agent already and `replace` is false;
    422: a stored snapshot Strands did not write, or a bad `storage_prefix`.
    """
    agents = await converter.convert(session_id, body.to, prefix=body.storage_prefix, replace=body.replace)
    return SessionConverted.model_validate({"session_id": session_id, "to": body.to, "agents": agents})


@router.get("/{session_id}/agents/{agent_id}/context-window", responses=PROBLEM_RESPONSES)
async def get_context_window(session_id: SessionId, agent_id: AgentId, store: Sessions) -> dict[str, Any]:
    """The agent's context window as its last turn left it (after its conversation manager's reductions).

    `{items: [{message_id, message}]}`: stored messages by id, summaries and changed messages as recorded
    (`message_id` null, or the id of the message it replaces), then messages stored since. 404 when none was recorded
    (restore as Strands does). `/messages` keeps the full log.
    """
    return await store.get_context_window(session_id, agent_id)
