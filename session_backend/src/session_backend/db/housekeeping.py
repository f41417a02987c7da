"""Housekeeping across resources: the sweeper's deletes of what has expired, and the counts `/metrics` shows."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..sql import active_agents as active_agents_sql
from ..sql import leases as leases_sql
from ..sql import sessions as sessions_sql
from ..sql import turns as turns_sql
from .turns import TURN_RETENTION_SECONDS


class Housekeeping:
    """Statements over every session at once (never on a request's path).

    Args:
        pool: the app's asyncpg pool.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def sweep_expired(self, batch_size: int) -> int:
        """Delete expired sessions in batches of `batch_size` until none is left, expired leases and old turn records.

        Returns:
            The number of sessions deleted.
        """
        await self.pool.execute(leases_sql.SWEEP_EXPIRED_LEASES)
        await self.pool.execute(active_agents_sql.SWEEP_EXPIRED_ACTIVE_AGENTS)
        await self.pool.execute(turns_sql.SWEEP_OLD_TURNS, TURN_RETENTION_SECONDS)
        total = 0
        while True:
            status = await self.pool.execute(sessions_sql.SWEEP_EXPIRED, batch_size)
            count = int(status.split()[-1])
            total += count
            if count < batch_size:
                return total

    async def counts(self) -> dict[str, Any]:
        """What the metrics endpoint shows of the database (a few aggregate queries; call once per scrape).

        Returns:
            `{"sessions": live sessions, "leases": live leases, "active_agents": {agent_id: live sessions routed}}`.
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(sessions_sql.COUNT_LIVE)
            assert row is not None  # an aggregate always yields its row
            by_agent = await conn.fetch(active_agents_sql.COUNT_BY_AGENT)
        return {
            "sessions": int(row["sessions"]),
            "leases": int(row["leases"]),
            "active_agents": {r["agent_id"]: int(r["sessions"]) for r in by_agent},
        }
