"""ProfileStore: reads and writes of agent profiles (`agent_profiles`)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from ..schemas.profiles import ProfileBody
from ..sql import profiles as sql
from .errors import AlreadyExists, NotFound

logger = logging.getLogger(__name__)


class ProfileStore:
    """Reads and writes of `agent_profiles`.

    Args:
        pool: the app's asyncpg pool (jsonb codec installed).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Wrap the pool."""
        self.pool = pool

    async def create(self, agent_id: str | None, body: ProfileBody, owner_actor_id: str | None = None) -> str:
        """Store a new profile.

        Args:
            agent_id: the id to use; None generates one.
            body: the profile's content.
            owner_actor_id: the actor it belongs to; None: nobody's.

        Returns:
            The stored profile as JSON text.

        Raises:
            AlreadyExists: a profile has this agent_id.
        """
        agent_id = agent_id or uuid.uuid4().hex
        text = await self.pool.fetchval(sql.INSERT_PROFILE, agent_id, *_columns(body), owner_actor_id)
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

    async def page(
        self, *, limit: int, after: str | None, visible_to: str | None = None
    ) -> tuple[list[str], str | None]:
        """One page of profiles ordered by agent_id.

        Args:
            limit: page size.
            after: the last agent_id of the previous page (None: first page).
            visible_to: an actor: only the profiles it may use (its own, shared, ownerless); None: all.

        Returns:
            The profiles as JSON texts, and the cursor of the next page (None when this is the last).
        """
        rows = await self.pool.fetch(sql.LIST_PROFILES, after, limit + 1, visible_to)
        more = len(rows) > limit
        rows = rows[:limit]
        return [str(r[1]) for r in rows], (str(rows[-1][0]) if more and rows else None)

    async def update(self, agent_id: str, body: ProfileBody) -> str:
        """Replace a profile's content (its agent_id, owner and created_at stay).

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


def _columns(body: ProfileBody) -> tuple[str, str | None, dict[str, Any], list[str], bool]:
    return body.name, body.system_prompt, body.model_settings.model_dump(exclude_none=True), body.tools, body.shared
