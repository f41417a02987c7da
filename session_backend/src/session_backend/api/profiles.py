"""Routes of agent profiles (`/v1/agent-profiles`)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import HTTPException, Query, Response

from ..schemas.common import IDENTIFIER_PATTERN
from ..schemas.profiles import ProfileCreate, ProfilePage, ProfilePublic, ProfileUpdate
from .deps import AgentId, Profiles, json_response, v1_router

router = v1_router("/agent-profiles", tags=["agent profiles"])


@router.post("", status_code=201, response_model=ProfilePublic)
async def create_profile(body: ProfileCreate, store: Profiles) -> Response:
    """Create a profile (409 when `agent_id` is given and taken), owned by `owner_actor_id` when given."""
    return json_response(await store.create(body.agent_id, body, body.owner_actor_id), 201)


@router.get("", response_model=ProfilePage)
async def list_profiles(
    store: Profiles,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN, max_length=256)] = None,
    visible_to: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN, max_length=256)] = None,
) -> Response:
    """List profiles ordered by agent_id, with keyset pagination; `visible_to`: only those that actor may use."""
    items, next_cursor = await store.page(limit=limit, after=cursor, visible_to=visible_to)
    return json_response(f'{{"items":[{",".join(items)}],"next_cursor":{orjson.dumps(next_cursor).decode()}}}')


@router.get("/{agent_id}", response_model=ProfilePublic)
async def get_profile(agent_id: AgentId, store: Profiles) -> Response:
    """Read a profile."""
    return json_response(await store.get(agent_id))


@router.put("/{agent_id}", response_model=ProfilePublic)
async def update_profile(agent_id: AgentId, body: ProfileUpdate, store: Profiles) -> Response:
    """Replace a profile's name, system prompt, model config and tools."""
    if body.agent_id is not None and body.agent_id != agent_id:
        raise HTTPException(422, "agent_id in the body differs from the path")
    return json_response(await store.update(agent_id, body))


@router.delete("/{agent_id}", status_code=204)
async def delete_profile(agent_id: AgentId, store: Profiles) -> Response:
    """Delete a profile."""
    await store.delete(agent_id)
    return Response(status_code=204)
