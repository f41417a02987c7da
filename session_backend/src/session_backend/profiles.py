"""Agent profiles (`/v1/agent-profiles`): the request/response bodies, the store over `sql.profiles`, and the routes.

The backend checks shapes and sizes only; which providers and tools exist is the agent service's to decide.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .errors import AlreadyExists, NotFound
from .jsonbody import StrictJSONRoute
from .schemas import IDENTIFIER_PATTERN, Identifier, Problem
from .sql import profiles as sql
from .validators import utf8_text

logger = logging.getLogger(__name__)

JSON = "application/json"
MAX_TOOLS = 128
MAX_SYSTEM_PROMPT_CHARS = 100_000

ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")]
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")]


def _unique(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("tool names must be unique")
    return names


class ModelConfig(BaseModel):
    """Which model a profile runs: all optional, the agent service's defaults fill the gaps."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    provider: ProviderName | None = None
    model_id: Annotated[str, StringConstraints(min_length=1, max_length=512), AfterValidator(utf8_text)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None


class ProfileBody(BaseModel):
    """A profile as written by PUT (a full replacement); POST takes the same plus an optional `agent_id`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())

    name: Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(utf8_text)]
    system_prompt: (
        Annotated[str, StringConstraints(max_length=MAX_SYSTEM_PROMPT_CHARS), AfterValidator(utf8_text)] | None
    ) = None
    model_settings: ModelConfig = Field(default_factory=ModelConfig, alias="model_config")
    tools: Annotated[list[ToolName], Field(max_length=MAX_TOOLS), AfterValidator(_unique)] = Field(default_factory=list)


class ProfileCreate(ProfileBody):
    """A new profile; without `agent_id` the backend generates one (32 hex digits)."""

    agent_id: Identifier | None = None


class ProfileUpdate(ProfileBody):
    """A profile's new content; `agent_id`, when present, must match the path."""

    agent_id: Identifier | None = None


class ProfilePublic(ProfileBody):
    """A stored profile."""

    agent_id: str
    created_at: datetime
    updated_at: datetime


class ProfilePage(BaseModel):
    """One page of profiles ordered by agent_id; pass `next_cursor` back as `cursor` (null: last page)."""

    items: list[ProfilePublic]
    next_cursor: str | None


class ProfileStore:
    """Reads and writes of `agent_profiles`.

    Args:
        pool: the app's asyncpg pool (jsonb codec installed).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Wrap the pool."""
        self.pool = pool

    async def create(self, agent_id: str | None, body: ProfileBody) -> str:
        """Store a new profile.

        Args:
            agent_id: the id to use; None generates one.
            body: the profile's content.

        Returns:
            The stored profile as JSON text.

        Raises:
            AlreadyExists: a profile has this agent_id.
        """
        agent_id = agent_id or uuid.uuid4().hex
        text = await self.pool.fetchval(sql.INSERT_PROFILE, agent_id, *_columns(body))
        if text is None:
            raise AlreadyExists(f"agent profile {agent_id!r} already exists")
        logger.debug("agent_id=<%s> | created agent profile", agent_id)
        return str(text)

    async def get(self, agent_id: str) -> str:
        """Read a profile as JSON text.

        Raises:
            NotFound: no profile has this agent_id.
        """
        text = await self.pool.fetchval(sql.SELECT_PROFILE, agent_id)
        if text is None:
            raise NotFound(f"agent profile {agent_id!r} not found")
        return str(text)

    async def page(self, *, limit: int, after: str | None) -> tuple[list[str], str | None]:
        """One page of profiles ordered by agent_id.

        Args:
            limit: page size.
            after: the last agent_id of the previous page (None: first page).

        Returns:
            The profiles as JSON texts, and the cursor of the next page (None when this is the last).
        """
        rows = await self.pool.fetch(sql.LIST_PROFILES, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return [str(r[1]) for r in rows], (str(rows[-1][0]) if more and rows else None)

    async def update(self, agent_id: str, body: ProfileBody) -> str:
        """Replace a profile's content (its agent_id and created_at stay).

        Returns:
            The stored profile as JSON text.

        Raises:
            NotFound: no profile has this agent_id.
        """
        text = await self.pool.fetchval(sql.UPDATE_PROFILE, agent_id, *_columns(body))
        if text is None:
            raise NotFound(f"agent profile {agent_id!r} not found")
        logger.debug("agent_id=<%s> | updated agent profile", agent_id)
        return str(text)

    async def delete(self, agent_id: str) -> None:
        """Delete a profile (sessions that name it in their metadata keep that name).

        Raises:
            NotFound: no profile has this agent_id.
        """
        if await self.pool.fetchval(sql.DELETE_PROFILE, agent_id) is None:
            raise NotFound(f"agent profile {agent_id!r} not found")
        logger.debug("agent_id=<%s> | deleted agent profile", agent_id)


def _columns(body: ProfileBody) -> tuple[str, str | None, dict[str, Any], list[str]]:
    return body.name, body.system_prompt, body.model_settings.model_dump(exclude_none=True), body.tools


async def get_profile_store(request: Request) -> ProfileStore:
    """The profile store on the app's pool (the pool opened in the lifespan)."""
    return ProfileStore(request.app.state.store.pool)


Store = Annotated[ProfileStore, Depends(get_profile_store)]
AgentId = Annotated[Identifier, Path()]

_errors: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}} for code in (401, 404, 409, 413, 422, 503)
}

router = APIRouter(prefix="/v1/agent-profiles", tags=["agent profiles"], responses=_errors, route_class=StrictJSONRoute)


def _json(text: str, status_code: int = 200) -> Response:
    return Response(content=text, status_code=status_code, media_type=JSON)


@router.post("", status_code=201, response_model=ProfilePublic)
async def create_profile(body: ProfileCreate, store: Store) -> Response:
    """Create a profile (409 when `agent_id` is given and taken)."""
    return _json(await store.create(body.agent_id, body), 201)


@router.get("", response_model=ProfilePage)
async def list_profiles(
    store: Store,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN, max_length=256)] = None,
) -> Response:
    """List profiles ordered by agent_id, with keyset pagination."""
    items, next_cursor = await store.page(limit=limit, after=cursor)
    return _json(f'{{"items":[{",".join(items)}],"next_cursor":{orjson.dumps(next_cursor).decode()}}}')


@router.get("/{agent_id}", response_model=ProfilePublic)
async def get_profile(agent_id: AgentId, store: Store) -> Response:
    """Read a profile."""
    return _json(await store.get(agent_id))


@router.put("/{agent_id}", response_model=ProfilePublic)
async def update_profile(agent_id: AgentId, body: ProfileUpdate, store: Store) -> Response:
    """Replace a profile's name, system prompt, model config and tools."""
    if body.agent_id is not None and body.agent_id != agent_id:
        raise HTTPException(422, "agent_id in the body differs from the path")
    return _json(await store.update(agent_id, body))


@router.delete("/{agent_id}", status_code=204)
async def delete_profile(agent_id: AgentId, store: Store) -> Response:
    """Delete a profile."""
    await store.delete(agent_id)
    return Response(status_code=204)
